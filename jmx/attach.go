package jmx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
)

// Errors of the attach mechanism, for errors.Is.
var (
	// ErrNotJVM means the process has no libjvm.so: no attach is tried, since
	// the SIGQUIT that starts it would kill or dump another program.
	ErrNotJVM = errors.New("not a HotSpot JVM")
	// ErrAttach means the JVM did not open its attach socket, or refused.
	ErrAttach = errors.New("attach failed")
	// errNoListener means no JVM listens on the attach socket yet.
	errNoListener = errors.New("no attach listener")
	// ErrAttachDisabled means the JVM cannot be attached to, so memdiag
	// sends it no signal. It is an ErrAttach.
	ErrAttachDisabled = fmt.Errorf("%w: the JVM cannot be attached to", ErrAttach)
)

// MaxReply bounds a jcmd answer read from the attach socket. The largest
// real one memdiag asks for, VM.native_memory detail of a large JVM, is a
// few MiB; the others are bounded tighter (replyLimit).
const MaxReply = 16 << 20

// replyLimit is the most memdiag reads of the answer to command: a few KiB
// to a few hundred KiB in practice, MaxReply for NMT's detail.
func replyLimit(command string) int64 {
	switch {
	case command == "VM.version", strings.HasPrefix(command, "System."):
		return 64 << 10
	case command == "VM.native_memory detail", !strings.HasPrefix(command, "GC.") && !strings.HasPrefix(command, "VM."):
		return MaxReply
	}
	return 1 << 20 // GC.heap_info, VM.flags, VM.native_memory summary
}

// maxCmdline bounds the read of /proc/PID/cmdline (ARG_MAX is 2 MiB).
const maxCmdline = 4 << 20

// Attacher runs jcmd commands in a HotSpot JVM through its attach socket,
// the protocol jcmd and jattach speak: no JDK tools needed on the host.
//
// Run as root against another user's JVM, everything in the JVM's working
// directory and /tmp is that user's to change. The Attacher therefore
// resolves paths inside the JVM's root (openat2 RESOLVE_IN_ROOT), creates
// the trigger file, signals and connects on a thread that has the JVM
// user's credentials (targetfs.AsUser), connects to the socket inode it
// checked (never a name it looked at before), checks the listener's pid
// with SO_PEERCRED, and bounds the reply. It signals a JVM only when the JVM can attach and
// catches SIGQUIT.
type Attacher struct {
	// ProcRoot is the proc filesystem, "/proc" when empty.
	ProcRoot string
	// Timeout bounds waiting for the JVM's attach listener and its answer.
	// 0 means 10 s.
	Timeout time.Duration
	// Notify, when set, is told of a wait that may last more than a second,
	// in words for the user.
	Notify func(msg string)
}

func (a Attacher) proc(pid int) string { return proc.Dir(a.ProcRoot, pid) }

// IsJVM reports whether libjvm.so is mapped in the process.
func IsJVM(procRoot string, pid int) (bool, error) {
	return proc.HasLibrary(procRoot, pid, "libjvm.so")
}

// jvmTarget is what the attach needs to know of the JVM.
type jvmTarget struct {
	pid  int
	proc string
	ids  proc.IDs
	// start is the process's start time when it was identified: the
	// attach signal goes only to a process that still has it.
	start string
}

func (a Attacher) target(pid int) (jvmTarget, error) {
	jvm, err := IsJVM(a.ProcRoot, pid)
	if err != nil {
		return jvmTarget{}, err
	}
	if !jvm {
		return jvmTarget{}, fmt.Errorf("process %d: %w (no libjvm.so mapped)", pid, ErrNotJVM)
	}
	t := jvmTarget{pid: pid, proc: a.proc(pid)}
	if t.ids, err = proc.ReadStatus(t.proc, pid); err != nil {
		return jvmTarget{}, fmt.Errorf("process %d: %w", pid, err)
	}
	if t.start, _, err = proc.StartTime(t.proc); err != nil {
		return jvmTarget{}, procError(pid, "reading its start time", err)
	}
	return t, nil
}

func (t jvmTarget) cred() targetfs.Cred {
	return targetfs.Cred{UID: t.ids.UID, GID: t.ids.GID, Groups: t.ids.Groups}
}

// Run sends one jcmd command ("GC.heap_info", "VM.native_memory summary")
// and returns its output. It starts the JVM's attach listener if needed
// (an attach file, then SIGQUIT) when the JVM can attach.
func (a Attacher) Run(ctx context.Context, pid int, command string) (string, error) {
	t, err := a.target(pid)
	if err != nil {
		return "", err
	}
	return a.run(ctx, t, command)
}

// run is Run on a JVM already identified.
func (a Attacher) run(ctx context.Context, t jvmTarget, command string) (string, error) {
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := a.connect(ctx, t, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return request(ctx, conn, command)
}

// connect returns a connection to the JVM's attach listener, starting it
// if it is not up.
func (a Attacher) connect(ctx context.Context, t jvmTarget, timeout time.Duration) (net.Conn, error) {
	root, err := targetfs.OpenRoot(t.proc)
	if err != nil {
		return nil, procError(t.pid, "reaching its files", err)
	}
	// The working directory is tried first, as the JVM does; a JVM whose
	// cwd is gone still reads its /tmp.
	cwd, _ := targetfs.OpenCwd(t.proc)
	release := func() {
		root.Close()
		if cwd != nil {
			cwd.Close()
		}
	}
	sockName := ".java_pid" + strconv.Itoa(t.ids.NSPID)
	var conn net.Conn
	err = targetfs.AsUserContext(ctx, t.cred(), func() error {
		err := a.connectAsUser(ctx, t, root, cwd, sockName, timeout, &conn)
		if err == nil && ctx.Err() != nil {
			// Connected after the caller stopped waiting: nobody will
			// use it.
			conn.Close()
			return ctx.Err()
		}
		return err
	}, release)
	if errors.Is(err, targetfs.ErrNoAnswer) {
		return nil, fmt.Errorf("process %d: %w: %v", t.pid, ErrAttach, err)
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// connectAsUser is connect's work in the JVM user's credentials; it sets
// *conn.
func (a Attacher) connectAsUser(ctx context.Context, t jvmTarget, root, cwd *os.File, sockName string, timeout time.Duration, conn *net.Conn) error {
	tmp, err := targetfs.OpenIn(root, "tmp", unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("process %d: %w: its /tmp: %v", t.pid, ErrAttach, err)
	}
	defer tmp.Close()
	if *conn, err = dialListener(ctx, tmp, sockName, t); !errors.Is(err, errNoListener) {
		return err
	}
	if err := t.attachable(root); err != nil {
		return err
	}
	return a.startListener(ctx, t, cwd, tmp, timeout, func() error {
		*conn, err = dialListener(ctx, tmp, sockName, t)
		return err
	})
}

// dialListener connects to the socket name in tmp, if it is a socket owned
// by the JVM's user and its listener is the JVM. A missing socket, or one
// nobody listens on (left by an earlier JVM of this pid), is errNoListener.
func dialListener(ctx context.Context, tmp *os.File, name string, t jvmTarget) (net.Conn, error) {
	sock, err := targetfs.OpenAt(tmp, name, unix.O_PATH, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errNoListener
		}
		return nil, fmt.Errorf("process %d: %w: %v", t.pid, ErrAttach, err)
	}
	defer sock.Close()
	if _, err := targetfs.Check(sock, targetfs.Socket, t.ids.UID); err != nil {
		return nil, fmt.Errorf("process %d: %w: %v", t.pid, ErrAttach, err)
	}
	conn, peer, err := targetfs.DialUnix(ctx, sock)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, errNoListener // the JVM replaces it when it starts listening
		}
		return nil, fmt.Errorf("process %d: %w: %v", t.pid, ErrAttach, err)
	}
	// The kernel names the listener in this pid namespace; 0 means it is
	// in none memdiag can see, and then its uid must do.
	if (peer.PID != 0 && peer.PID != t.pid) || peer.UID != t.ids.UID {
		conn.Close()
		return nil, fmt.Errorf("process %d: %w: %s is served by process %d (uid %d), not by the JVM: refusing it", t.pid, ErrAttach, sock.Name(), peer.PID, peer.UID)
	}
	return conn, nil
}

// attachable refuses a JVM that cannot open its attach listener, before
// any signal: one that does not catch SIGQUIT (-Xrs) would die of it, and
// one started with -XX:+DisableAttachMechanism would only write a thread
// dump into its log.
func (t jvmTarget) attachable(root *os.File) error {
	if !t.ids.Catches(int(syscall.SIGQUIT)) {
		return fmt.Errorf("process %d: %w: it does not catch SIGQUIT (started with -Xrs or -XX:+ReduceSignalUsage?), so the signal that starts the attach listener would end it; memdiag sent none", t.pid, ErrAttachDisabled)
	}
	if args, err := readCmdline(t.proc); err == nil {
		for _, arg := range args {
			if arg == "-XX:+DisableAttachMechanism" || arg == "-XX:+ReduceSignalUsage" {
				return fmt.Errorf("process %d: %w: started with %s; memdiag sent no signal (hsperfdata is still read)", t.pid, ErrAttachDisabled, arg)
			}
		}
	}
	if counters, _, err := readHsperfOf(root, t.ids); err == nil {
		// Character 0 is AttachListener::is_attach_supported(): false
		// under DisableAttachMechanism, however it was set (a flags file,
		// JAVA_TOOL_OPTIONS).
		if c, ok := counters["sun.rt.jvmCapabilities"]; ok && c.IsText && strings.HasPrefix(c.String, "0") {
			return fmt.Errorf("process %d: %w: its hsperfdata says attach is not supported (-XX:+DisableAttachMechanism); memdiag sent no signal", t.pid, ErrAttachDisabled)
		}
	}
	return nil
}

// signalAttach sends the JVM the SIGQUIT that starts its attach
// listener, through a pidfd of the process identified, never by pid
// number alone: the waits before it are the target's user's to stretch,
// and by then the pid may be another process's — a root daemon's, which
// this thread's real uid could signal and SIGQUIT would kill.
func (t jvmTarget) signalAttach(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pidfd, err := unix.PidfdOpen(t.pid, 0)
	if err != nil {
		return procError(t.pid, "opening it to signal it", err)
	}
	defer unix.Close(pidfd)
	// The pidfd holds whatever process had the pid when it was opened;
	// the start time read after says it is the JVM identified.
	if start, _, err := proc.StartTime(t.proc); err != nil || start != t.start {
		return fmt.Errorf("process %d: %w: it exited since it was identified (start time %s, was %s); not signalled", t.pid, proc.ErrNoProcess, start, t.start)
	}
	if err := unix.PidfdSendSignal(pidfd, unix.SIGQUIT, nil, 0); err != nil {
		return fmt.Errorf("process %d: signalling the JVM: %w (needs its uid or CAP_KILL)", t.pid, err)
	}
	return nil
}

func readCmdline(proc string) ([]string, error) {
	f, err := os.Open(filepath.Join(proc, "cmdline"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := targetfs.ReadAll(f, maxCmdline, f.Name())
	if err != nil {
		return nil, err
	}
	return strings.Split(string(bytes.TrimRight(b, "\x00")), "\x00"), nil
}

// startListener asks the JVM to open its attach socket: an
// .attach_pid<NSPID> file in its working directory (or /tmp), then SIGQUIT;
// then dial is tried until it connects or ctx ends. It runs with the JVM
// user's credentials, so the file is the user's own.
func (a Attacher) startListener(ctx context.Context, t jvmTarget, cwd, tmp *os.File, timeout time.Duration, dial func() error) error {
	name := ".attach_pid" + strconv.Itoa(t.ids.NSPID)
	var dir *os.File
	var createErr error
	for _, d := range []*os.File{cwd, tmp} {
		if d == nil {
			continue
		}
		f, err := targetfs.OpenAt(d, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
		if err != nil {
			createErr = err
			continue
		}
		f.Close()
		dir = d
		break
	}
	if dir == nil {
		return fmt.Errorf("process %d: %w: cannot create %s in its working directory or /tmp as its user: %v", t.pid, ErrAttach, name, createErr)
	}
	// Removed through the same directory, as the same user: whatever
	// stands under the name by then, it is the user's own to lose.
	defer unix.Unlinkat(int(dir.Fd()), name, 0)
	if err := t.signalAttach(ctx); err != nil {
		return err
	}
	start := time.Now()
	told := false
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := dial()
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoListener) {
			return err
		}
		if !told && a.Notify != nil && time.Since(start) > time.Second {
			a.Notify(fmt.Sprintf("waiting for the attach listener of JVM %d (up to %v)", t.pid, timeout.Round(time.Second)))
			told = true
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return fmt.Errorf("process %d: %w: interrupted while waiting for its attach listener", t.pid, ErrAttach)
			}
			return fmt.Errorf("process %d: %w: no attach socket /tmp/.java_pid%d %v after the SIGQUIT (started with -XX:+DisableAttachMechanism, or too busy to answer?)", t.pid, ErrAttach, t.ids.NSPID, time.Since(start).Round(time.Second))
		case <-tick.C:
		}
	}
}

// request speaks protocol 1: "1\0jcmd\0<command>\0\0\0", answered by a
// status line (0 is success) and the command's output, at most
// replyLimit(command) bytes.
func request(ctx context.Context, conn net.Conn, command string) (string, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("1\x00jcmd\x00" + command + "\x00\x00\x00")); err != nil {
		return "", fmt.Errorf("%w: sending %q: %v%s", ErrAttach, command, err, refusedHint(err))
	}
	body, err := targetfs.ReadAll(conn, replyLimit(command), "the answer to "+strconv.Quote(command))
	if err != nil {
		return "", fmt.Errorf("%w: reading the answer to %q: %w%s", ErrAttach, command, err, refusedHint(err))
	}
	if len(body) == 0 {
		return "", fmt.Errorf("%w: the JVM closed the connection without answering %q%s", ErrAttach, command, refusedHint(syscall.EPIPE))
	}
	status, out, _ := strings.Cut(string(body), "\n")
	if strings.TrimSpace(status) != "0" {
		return "", fmt.Errorf("%w: %q answered status %s: %s", ErrAttach, command, strings.TrimSpace(status), strings.TrimSpace(out))
	}
	return out, nil
}

// refusedHint explains a connection the JVM dropped: it serves only its
// own effective uid and gid, or root.
func refusedHint(err error) string {
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return " (the JVM accepts only its own user and root)"
	}
	return ""
}

// procError words a failure to open a /proc entry of process pid.
func procError(pid int, doing string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("process %d: %w", pid, proc.ErrNoProcess)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("process %d: %s: permission denied: needs its uid or CAP_SYS_PTRACE (run as root or as the JVM's user)", pid, doing)
	}
	return fmt.Errorf("process %d: %s: %w", pid, doing, err)
}
