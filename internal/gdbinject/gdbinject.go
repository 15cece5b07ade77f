// Package gdbinject calls functions inside a live process with gdb, as
// safely as that can be done from root against a process of another user:
// gdb runs as the target's own user without capabilities where the kernel
// allows it, reads its commands from a sealed memfd and hands its output
// back over a pipe — no file is made or read in the target's reach — reads
// no init files and loads only the symbols of the libraries named; the
// target's identity (start time, executable, uids) is compared before and
// after, and a call into a Go program is refused. Before any target is
// touched, gdb is proven on a canary process of memdiag's own (canary.go):
// where its calls harm a process, Run refuses. The process is paused
// while gdb is attached; a call still running at the deadline is unwound.
package gdbinject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/proc"
)

// Errors of an injection, for errors.Is.
var (
	ErrNoGDB     = errors.New("gdb not found")
	ErrNoPtrace  = errors.New("ptrace not permitted")
	ErrNoProcess = proc.ErrNoProcess
	ErrRun       = errors.New("the call in the process failed")
	// ErrGoProgram means the process is a Go program: gdb's injected call
	// would run on whatever stack the stopped thread is on, which in Go may
	// be a goroutine's stack of a few KiB — the call could overflow it and
	// crash the program.
	ErrGoProgram = errors.New("process is a Go program")
)

// Injector runs gdb scripts inside live processes.
type Injector struct {
	// GDB is the gdb binary; "" looks it up in PATH.
	GDB string
	// Proc is the proc filesystem.
	Proc proc.FS
	// Timeout bounds the whole run. On expiry gdb is interrupted; with
	// unwindonsignal it unwinds the injected call and detaches. 0 means 30 s.
	Timeout time.Duration
	// Notify, when set, is told just before gdb attaches (every check that
	// can refuse has passed), in words for the user.
	Notify func(msg string)
	// Canary keeps the verdict of the canary run that proves, before any
	// target is touched, that gdb's calls leave a process as it was on
	// this host (see Canary); share one among a command's injectors. nil:
	// every Run proves gdb anew.
	Canary *Canary
	// SkipCanary makes Run call into the target without proving gdb on a
	// canary first. It is for tests whose GDB is a stand-in script that
	// calls nothing; memdiag's commands never set it.
	SkipCanary bool
}

// Job is what to run in the process.
type Job struct {
	// What names the call for messages: "malloc_info", "malloc_trim(0)".
	What string
	// Libraries are the base names of the shared libraries whose symbols
	// gdb loads (libc.so.6, libjemalloc.so.2); the executable's are always
	// loaded.
	Libraries []string
	// Script is the gdb commands run once attached. They write what is
	// wanted to /dev/fd/3 (dump binary memory) and say how it went with
	// printf on gdb's standard output, which Result.Log holds.
	Script string
	// MaxOutput bounds what is read from descriptor 3.
	MaxOutput int
}

// Result is what a run produced.
type Result struct {
	Log    []byte        // gdb's output, at most 1 MiB
	Output []byte        // what came on descriptor 3
	Paused time.Duration // from gdb's start to its exit: the longest the process was stopped
}

// Run runs job in process pid, after the canary (unless SkipCanary). The
// error is one of the sentinels above, wrapped with what happened, or nil:
// then Result.Log says whether the script's calls succeeded, which only
// the caller can judge.
func (in Injector) Run(ctx context.Context, pid int, job Job) (Result, error) {
	procDir := in.Proc.Dir(pid)
	if err := CheckAlive(in.Proc, pid); err != nil {
		return Result{}, err
	}
	if err := in.CheckNotGo(pid, job.What); err != nil {
		return Result{}, err
	}
	ids, err := proc.ReadStatus(procDir, pid)
	if err != nil {
		return Result{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	if ids.TracerPID != 0 {
		return Result{}, fmt.Errorf("process %d: %w: it is already traced by process %d (%s); a process has one tracer at a time — detach that debugger first", pid, ErrNoPtrace, ids.TracerPID, commName(in.Proc, ids.TracerPID))
	}
	gdb, err := in.gdbPath(job.What)
	if err != nil {
		return Result{}, err
	}
	timeout := in.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if err := in.proveGDB(ctx, gdb, pid, ids, timeout); err != nil {
		return Result{}, err
	}
	before, err := readIdentity(procDir)
	if err != nil {
		return Result{}, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	if in.Notify != nil {
		in.Notify(fmt.Sprintf("attaching gdb to process %d (%s) to call %s; it pauses while attached (at most %v)", pid, ids.Name, job.What, timeout))
	}
	wasStopped := isStopped(procDir)
	script := preamble(job.Libraries) + job.Script
	maxOut := job.MaxOutput
	if maxOut <= 0 {
		maxOut = 1 << 20
	}
	started := time.Now()
	run := gdbRun{gdb: gdb, pid: pid, script: script, timeout: timeout, maxOutput: maxOut, notify: in.Notify}
	res, runErr := runGDBAs(ctx, run, procDir, ids, before)
	paused := time.Since(started)
	// The pid checked is not always the process gdb reached: between the
	// checks and the attach it may have exec'd another program (a setuid
	// one, say) or exited and had its pid reused. What it did is then not
	// the target's — and a pid reused is not ours to signal either.
	if err := fate(procDir, pid, before, string(res.log)); err != nil {
		return Result{}, err
	}
	if !wasStopped {
		ensureRunning(procDir, pid)
	}
	return Result{Log: res.log, Output: res.doc, Paused: paused}, runError(pid, job.What, res, runErr)
}

// gdbPath is the gdb to run: in.GDB, else gdb on PATH, made absolute (gdb
// starts in /, so a relative name is resolved here, where it was meant).
func (in Injector) gdbPath(what string) (string, error) {
	gdb := in.GDB
	if gdb == "" {
		p, err := exec.LookPath("gdb")
		if err != nil {
			return "", fmt.Errorf("%w in PATH: calling %s in a live process needs it (apt-get install gdb)", ErrNoGDB, what)
		}
		gdb = p
	}
	if abs, err := filepath.Abs(gdb); err == nil {
		gdb = abs
	}
	return gdb, nil
}

// runError tells what a gdb run's outcome means, from its error and what
// it wrote: nil when the script ran (its log says whether its calls
// succeeded, which only the caller can judge).
func runError(pid int, what string, res gdbResult, runErr error) error {
	text := string(res.log)
	switch {
	case errors.Is(runErr, context.Canceled):
		// The user asked to stop: whatever gdb got to, say so.
		return fmt.Errorf("%w on process %d: interrupted; gdb unwound any call in progress and detached", ErrRun, pid)
	case text == "" && runErr != nil:
		return runErr // refused before gdb ran
	case strings.Contains(text, "ptrace: Operation not permitted"):
		return fmt.Errorf("attaching gdb to process %d: %w: needs the same uid and kernel.yama.ptrace_scope ≤ 1 (see /proc/sys/kernel/yama/ptrace_scope), or CAP_SYS_PTRACE (e.g. sudo); in a container, the capability SYS_PTRACE", pid, ErrNoPtrace)
	case strings.Contains(text, "No such process"):
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case res.err != nil:
		return fmt.Errorf("%w: reading what %s wrote in process %d: %v", ErrRun, what, pid, res.err)
	case runErr != nil:
		return fmt.Errorf("%w on process %d (%v); gdb said: %s", ErrRun, pid, runErr, LastLines(text, 4))
	}
	return nil
}

// preamble sets gdb up: no questions, C, calls unwound on a signal, and
// only the named libraries' symbols loaded — by base name, anchored at
// the path's last slash and allowing only version numbers after it
// (libtcmalloc_minimal.so matches …/libtcmalloc_minimal.so.4, the name the
// loader has, and the .so.4.5.10 it resolves to), so that no other library
// whose name merely contains it is.
func preamble(libs []string) string {
	var b strings.Builder
	b.WriteString("set confirm off\nset pagination off\nset unwindonsignal on\nset language c\n")
	for _, l := range libs {
		fmt.Fprintf(&b, "sharedlibrary /%s[.0-9]*$\n", libraryPattern(l))
	}
	return b.String()
}

// libraryPattern escapes a library's base name for gdb's (POSIX basic)
// regular expressions; a name with anything but letters, digits, dots,
// dashes, underscores and pluses is refused as no library's, and matches
// nothing.
func libraryPattern(lib string) string {
	for _, r := range lib {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' || r == '+') {
			return "memdiag-refused-library-name"
		}
	}
	return strings.NewReplacer(".", `\.`, "+", `\+`).Replace(lib)
}

// gdbRun is one run of gdb.
type gdbRun struct {
	gdb, script string
	pid         int
	timeout     time.Duration
	maxOutput   int
	notify      func(string) // told what of the target's gdb could not be given
}

type gdbResult struct {
	log []byte // gdb's stdout and stderr
	doc []byte // what came on descriptor 3
	err error  // reading descriptor 3
}

// runGDB runs script against pid. The script reaches gdb as a memfd (as
// -x /dev/fd/4), never through a named file, and gdb's descriptor 3 is a pipe
// read here, at most maxOutput bytes. gdb reads no init files and loads
// no auto-load scripts, no debuginfod downloads and only libc's symbols:
// the target's files are the target user's, and the process is paused
// from attach to detach. detach and quit follow the script as separate
// commands, so they run even if the script stops at an error. At the
// deadline (or ctx's end) gdb gets SIGINT, which interrupts the injected
// call (unwound, see unwindonsignal); if gdb has not exited 10 s later it
// is killed.
//
// With cred, gdb runs as that user, with what of the target's place holds
// (see startIsolated).
func runGDB(ctx context.Context, r gdbRun, cred *syscall.Credential, place *placement) (gdbResult, error) {
	timeout, maxOutput := r.timeout, r.maxOutput
	docR, docW, err := os.Pipe()
	if err != nil {
		return gdbResult{}, err
	}
	if cred != nil {
		// gdb reopens its descriptor 3 by name (/dev/fd/3): the pipe
		// must be its user's to open.
		if err := docW.Chown(int(cred.Uid), int(cred.Gid)); err != nil {
			docR.Close()
			docW.Close()
			return gdbResult{}, fmt.Errorf("handing the capture's pipe to uid %d: %w", cred.Uid, err)
		}
	}
	// gdb seeks in its command files, so the script is a memfd, not a pipe.
	scriptFile, err := scriptMemfd(r.script)
	if err != nil {
		docR.Close()
		docW.Close()
		return gdbResult{}, err
	}
	defer scriptFile.Close()
	var out cappedBuffer
	cmd := gdbCommand(r, &out, docW, scriptFile, cred)
	err = startIsolated(cmd, place, r.notify)
	docW.Close()
	if err != nil {
		docR.Close()
		return gdbResult{}, fmt.Errorf("starting gdb: %w", err)
	}
	docDone := make(chan gdbResult, 1)
	go func() {
		var r gdbResult
		r.doc, r.err = io.ReadAll(io.LimitReader(docR, int64(maxOutput)))
		_, _ = io.Copy(io.Discard, docR) // never block gdb
		docR.Close()
		docDone <- r
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	// gdb has exited: its end of the pipe is closed, and the rest comes at
	// once — unless another process holds it open. The target's user can:
	// the write end is theirs (/proc/GDB/fd/3). So the read gets a
	// deadline, never an end-of-file to wait for.
	finish := func(err error) (gdbResult, error) {
		_ = docR.SetReadDeadline(time.Now().Add(2 * time.Second))
		r := <-docDone
		if errors.Is(r.err, os.ErrDeadlineExceeded) {
			r.err = errors.New("another process held the output pipe open after gdb exited (the target's user can reach it): the output is discarded")
		}
		r.log = out.Bytes()
		return r, err
	}
	var why error
	select {
	case err := <-done:
		return finish(err)
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("timed out after %v", timeout)
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		return finish(fmt.Errorf("%w: gdb interrupted (%v)", why, err))
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return finish(fmt.Errorf("%w: gdb killed", why))
	}
}

// gdbCommand is gdb attaching to r.pid to run the script at descriptor 4
// and write its output to descriptor 3, with its output and errors in out.
func gdbCommand(r gdbRun, out io.Writer, docW, scriptFile *os.File, cred *syscall.Credential) *exec.Cmd {
	cmd := exec.Command(r.gdb, "-nx", "-batch",
		"-iex", "set auto-load off", "-iex", "set debuginfod enabled off",
		"-iex", "set auto-solib-add off", "-iex", "set history save off",
		"-p", strconv.Itoa(r.pid), "-x", "/dev/fd/4", "-ex", "detach", "-ex", "quit")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.ExtraFiles = []*os.File{docW, scriptFile}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=/nonexistent"}
	// A session of its own: gdb runs as the target's user, who may ptrace
	// it, so it must hold nothing of ours — no controlling terminal to push
	// keystrokes into (TIOCSTI) or read from, no job of our session to
	// continue. Our Ctrl-C is not gdb's either.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: cred}
	// Output pipes another process holds open do not keep Wait waiting.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// runGDBAs runs gdb as the target's own user, without capabilities,
// when memdiag is root: the kernel then lets gdb reach only what that user
// could — not a setuid program the target exec'd a moment before (it is
// not dumpable), and never with elevated credentials one it execs while
// traced (the tracer lacks CAP_SYS_PTRACE) — and gdb parses the target's
// files (its executable, its libc) without root's privileges.
//
// If the kernel refuses that, gdb runs as root only where the reason is
// the host's policy, Yama's kernel.yama.ptrace_scope ≥ 1, which forbids a
// user to trace its own processes, and the target is still the same,
// dumpable process; Capture's identity check then discards a capture
// during which it changed.
func runGDBAs(ctx context.Context, r gdbRun, procDir string, ids proc.IDs, before identity) (gdbResult, error) {
	pid := r.pid
	if os.Geteuid() != 0 || ids.UID == 0 {
		return runGDB(ctx, r, nil, nil)
	}
	if ids.GID < 0 {
		return gdbResult{}, fmt.Errorf("process %d: %w: its gid is unknown", pid, ErrNoPtrace)
	}
	groups := make([]uint32, len(ids.Groups))
	for i, g := range ids.Groups {
		groups[i] = uint32(g)
	}
	cred := &syscall.Credential{Uid: uint32(ids.UID), Gid: uint32(ids.GID), Groups: groups}
	place := readPlacement(procDir, pid)
	res, err := runGDB(ctx, r, cred, place)
	place.close()
	if !bytes.Contains(res.log, []byte("ptrace: Operation not permitted")) {
		return res, err
	}
	now, idErr := readIdentity(procDir)
	switch {
	case idErr != nil:
		return res, err
	case now != before:
		return gdbResult{}, fmt.Errorf("%w: process %d changed before gdb could attach (%s): memdiag will not trace it as root", ErrRun, pid, before.change(now))
	case !now.dumpable:
		return gdbResult{}, fmt.Errorf("process %d: %w: it is not dumpable (it set PR_SET_DUMPABLE 0, or runs a setuid program), so its own user cannot trace it, and memdiag will not trace it as root", pid, ErrNoPtrace)
	case yamaScope() < 1:
		return res, err
	}
	return runGDB(ctx, r, nil, nil)
}

// yamaScope is kernel.yama.ptrace_scope, 0 where Yama is absent.
func yamaScope() int {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// identity is what tells a process from another that has its pid, or from
// itself after an exec: its start time, its executable's inode and its
// uids.
type identity struct {
	start              string
	exeDev, exeIno     uint64
	uids, comm, exeErr string
	// dumpable is false when the kernel hands the process's /proc files to
	// root: it set PR_SET_DUMPABLE 0, or changed credentials (setuid).
	dumpable bool
}

func readIdentity(procDir string) (identity, error) {
	var id identity
	start, _, err := proc.StartTime(procDir)
	if err != nil {
		return id, err
	}
	id.start = start
	ids, err := proc.ReadStatus(procDir, 0)
	if err != nil {
		return id, err
	}
	id.comm, id.uids = ids.Name, ids.UIDs
	var st syscall.Stat_t
	if err := syscall.Stat(procDir, &st); err != nil {
		return id, err
	}
	id.dumpable = st.Uid != 0 || ids.UID == 0
	if err := syscall.Stat(filepath.Join(procDir, "exe"), &st); err != nil {
		id.exeErr = err.Error()
	} else {
		id.exeDev, id.exeIno = st.Dev, st.Ino
	}
	return id, nil
}

// change says in words how after differs from id.
func (id identity) change(after identity) string {
	switch {
	case after.start != id.start:
		return "it exited and its pid was reused"
	case after.exeDev != id.exeDev || after.exeIno != id.exeIno || after.exeErr != id.exeErr:
		return fmt.Sprintf("it exec'd another program, now %s", after.comm)
	case after.uids != id.uids:
		return fmt.Sprintf("its uids changed from %s to %s", id.uids, after.uids)
	}
	return "it changed"
}

// scriptMemfd returns an anonymous in-memory file holding script: it has
// no name in any directory, so nobody can swap it.
func scriptMemfd(script string) (*os.File, error) {
	fd, err := unix.MemfdCreate("memdiag-gdb-script", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("creating gdb's script: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gdb script")
	if _, err := io.WriteString(f, script); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing gdb's script: %w", err)
	}
	// Sealed: whoever reaches gdb's descriptor (its user, when gdb runs
	// as the target's user) cannot change a line of it.
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("sealing gdb's script: %w", err)
	}
	return f, nil
}

// cappedBuffer keeps the first maxLog bytes written to it: gdb's output
// grows with what the target holds (a line per thread), which the target
// decides.
type cappedBuffer struct{ bytes.Buffer }

const maxLog = 1 << 20

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxLog - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// isStopped reports whether the process is in the stopped state (T).
func isStopped(procDir string) bool {
	b, err := os.ReadFile(filepath.Join(procDir, "stat"))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'T'
}

// ensureRunning resumes a target that gdb left stopped (a gdb killed
// mid-attach can leave its SIGSTOP pending). It is called only for a
// process that was running before the capture: one a user stopped stays
// stopped.
func ensureRunning(procDir string, pid int) {
	if isStopped(procDir) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

// commName is the command name of pid, or "unknown".
func commName(fsys proc.FS, pid int) string {
	ids, err := fsys.Status(pid)
	if err != nil || ids.Name == "" {
		return "unknown"
	}
	return ids.Name
}

// CheckNotGo refuses a Go executable (one with a .go.buildinfo section),
// before other checks that would say less: Run makes it first.
func (in Injector) CheckNotGo(pid int, what string) error {
	exe := in.Proc.PIDPath(pid, "exe")
	const wait = 5 * time.Second
	deadline := time.Now().Add(wait)
	isGo, err := elfinfo.CheckGoFile(exe, wait)
	// Another caller's probe of the same executable may still be running
	// (a loaded machine): wait for it within the same bound.
	for errors.Is(err, elfinfo.ErrPending) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		isGo, err = elfinfo.CheckGoFile(exe, time.Until(deadline))
	}
	switch {
	case errors.Is(err, elfinfo.ErrSlow):
		// gdb would read the same file, as the same user, and stall too.
		return fmt.Errorf("%w on process %d: its executable did not answer within %v (a file on a FUSE mount its user serves?): memdiag will not attach", ErrRun, pid, wait)
	case err != nil:
		return nil // unreadable: gdb will say what it finds
	}
	if isGo {
		return fmt.Errorf("process %d: %w: calling %s inside it could overflow a goroutine's stack, so memdiag will not; Go's heap is in its runtime metrics (runtime/metrics, /debug/pprof/heap, GODEBUG=gctrace=1), and cgo's C allocations in a malloc_info the program logs itself", pid, ErrGoProgram, what)
	}
	return nil
}

// LastLines joins the last n lines of s, for a message.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
