package jmx

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/memdiag/memdiag/internal/procstatus"
)

// Errors of the attach mechanism, for errors.Is.
var (
	// ErrNotJVM means the process has no libjvm.so: no attach is tried, since
	// the SIGQUIT that starts it would kill or dump another program.
	ErrNotJVM = errors.New("not a HotSpot JVM")
	// ErrAttach means the JVM did not open its attach socket, or refused.
	ErrAttach = errors.New("attach failed")
)

// Attacher runs jcmd commands in a HotSpot JVM through its attach socket,
// the protocol jcmd and jattach speak: no JDK tools needed on the host.
type Attacher struct {
	// ProcRoot is the proc filesystem, "/proc" when empty.
	ProcRoot string
	// Timeout bounds waiting for the JVM's attach listener and its answer.
	Timeout time.Duration
}

func (a Attacher) proc(pid int) string {
	root := a.ProcRoot
	if root == "" {
		root = "/proc"
	}
	return filepath.Join(root, strconv.Itoa(pid))
}

// IsJVM reports whether libjvm.so is mapped in the process.
func IsJVM(procRoot string, pid int) (bool, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if strings.HasSuffix(sc.Text(), "/libjvm.so") {
			return true, nil
		}
	}
	return false, sc.Err()
}

// Run sends one jcmd command ("GC.heap_info", "VM.native_memory summary")
// and returns its output. It starts the JVM's attach listener if needed
// (an attach file, then SIGQUIT), and checks the socket belongs to the
// JVM's user before connecting.
func (a Attacher) Run(ctx context.Context, pid int, command string) (string, error) {
	proc := a.proc(pid)
	jvm, err := IsJVM(a.ProcRoot, pid)
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	if !jvm {
		return "", fmt.Errorf("process %d: %w (no libjvm.so mapped)", pid, ErrNotJVM)
	}
	ids, err := procstatus.Read(proc, pid)
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	uid, gid, nspid := ids.UID, ids.GID, ids.NSPID
	timeout := a.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tmp := filepath.Join(proc, "root", "tmp")
	sock := filepath.Join(tmp, ".java_pid"+strconv.Itoa(nspid))
	if err := checkSocket(sock, uid); err != nil {
		if err := a.startListener(ctx, proc, pid, nspid, uid, gid, tmp, sock); err != nil {
			return "", err
		}
	}
	return request(ctx, sock, command)
}

// checkSocket accepts only a socket (not a symlink) owned by the JVM's uid.
func checkSocket(path string, uid int) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
		return fmt.Errorf("%s belongs to uid %d, not the JVM's uid %d: refusing it", path, st.Uid, uid)
	}
	return nil
}

// startListener asks the JVM to open its attach socket: an
// .attach_pid<NSPID> file in its working directory (or /tmp), then SIGQUIT.
func (a Attacher) startListener(ctx context.Context, proc string, pid, nspid, uid, gid int, tmp, sock string) error {
	name := ".attach_pid" + strconv.Itoa(nspid)
	var trigger string
	for _, dir := range []string{filepath.Join(proc, "cwd"), tmp} {
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			continue
		}
		f.Close()
		if os.Geteuid() == 0 && uid >= 0 {
			_ = os.Chown(path, uid, gid)
		}
		trigger = path
		break
	}
	if trigger == "" {
		return fmt.Errorf("process %d: %w: cannot create %s in its working directory or /tmp", pid, ErrAttach, name)
	}
	defer os.Remove(trigger)
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil {
		return fmt.Errorf("process %d: signalling the JVM: %w (needs the same uid or CAP_KILL)", pid, err)
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := checkSocket(sock, uid); err == nil {
			return nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("process %d: %w: %v", pid, ErrAttach, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("process %d: %w: no attach socket %s after the SIGQUIT (started with -XX:+DisableAttachMechanism, or -Xrs?)", pid, ErrAttach, sock)
		case <-tick.C:
		}
	}
}

// request speaks protocol 1: "1\0jcmd\0<command>\0\0\0", answered by a
// status line (0 is success) and the command's output.
func request(ctx context.Context, sock, command string) (string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", fmt.Errorf("%w: connecting to %s: %v (the client must run as the JVM's user or root)", ErrAttach, sock, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := io.WriteString(conn, "1\x00jcmd\x00"+command+"\x00\x00\x00"); err != nil {
		return "", fmt.Errorf("%w: sending %q: %v", ErrAttach, command, err)
	}
	body, err := io.ReadAll(conn)
	if err != nil {
		return "", fmt.Errorf("%w: reading the answer to %q: %v", ErrAttach, command, err)
	}
	status, out, _ := strings.Cut(string(body), "\n")
	if strings.TrimSpace(status) != "0" {
		return "", fmt.Errorf("%w: %q answered status %s: %s", ErrAttach, command, strings.TrimSpace(status), strings.TrimSpace(out))
	}
	return out, nil
}
