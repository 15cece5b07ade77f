package mallocinfo

import (
	"bytes"
	"context"
	"debug/elf"
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

	"github.com/memdiag/memdiag/internal/procmaps"
	"github.com/memdiag/memdiag/internal/procstatus"
)

// Errors of a live capture, for errors.Is.
var (
	ErrNoGDB      = errors.New("gdb not found")
	ErrNotGlibc   = errors.New("process is not dynamically linked with glibc")
	ErrNoPtrace   = errors.New("ptrace not permitted")
	ErrNoProcess  = errors.New("no such process")
	ErrCaptureRun = errors.New("malloc_info capture failed")
)

// MaxCapture bounds the malloc_info document a live capture reads: the
// size of the buffer the target writes it into. A real document takes
// about 3 KiB per arena.
const MaxCapture = 16 << 20

// Capturer takes malloc_info from a live process: gdb attaches, maps a
// private buffer in the process, has malloc_info write into it through
// fmemopen, copies it out into memdiag over a pipe, unmaps it and
// detaches. Nothing is written to any file, so nothing in the target's
// reach (its /tmp, its root) is trusted or left behind. The process is
// paused for that time — usually well under a second.
type Capturer struct {
	// GDB is the gdb binary; "" looks it up in PATH.
	GDB string
	// ProcRoot is the proc filesystem, "/proc" when empty.
	ProcRoot string
	// Timeout bounds the whole capture. On expiry gdb is interrupted; with
	// unwindonsignal it unwinds the injected call and detaches. 0 means 30 s.
	Timeout time.Duration
	// Notify, when set, is told just before gdb attaches (every check that
	// can refuse has passed), in words for the user.
	Notify func(msg string)
}

func (c Capturer) procRoot() string {
	if c.ProcRoot == "" {
		return "/proc"
	}
	return c.ProcRoot
}

// Capture returns the malloc_info document of process pid.
func (c Capturer) Capture(ctx context.Context, pid int) (*Info, error) {
	proc := filepath.Join(c.procRoot(), strconv.Itoa(pid))
	if err := checkNotGo(proc, pid); err != nil {
		return nil, err
	}
	if err := checkGlibc(c.procRoot(), pid); err != nil {
		return nil, err
	}
	ids, err := procstatus.Read(proc, pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	if ids.TracerPID != 0 {
		return nil, fmt.Errorf("process %d: %w: it is already traced by process %d (%s); a process has one tracer at a time — detach that debugger first", pid, ErrNoPtrace, ids.TracerPID, commName(c.procRoot(), ids.TracerPID))
	}
	gdb := c.GDB
	if gdb == "" {
		p, err := exec.LookPath("gdb")
		if err != nil {
			return nil, fmt.Errorf("%w in PATH: live malloc_info capture needs it (apt-get install gdb), or pass a saved malloc_info file", ErrNoGDB)
		}
		gdb = p
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if c.Notify != nil {
		c.Notify(fmt.Sprintf("attaching gdb to process %d (%s) to call malloc_info; it pauses while attached (at most %v)", pid, ids.Name, timeout))
	}
	wasStopped := isStopped(proc)
	res, runErr := runGDB(ctx, gdb, pid, captureScript, timeout)
	if !wasStopped {
		ensureRunning(proc, pid)
	}

	text := string(res.log)
	if errors.Is(runErr, context.Canceled) {
		// The user asked to stop: whatever gdb got to, say so.
		return nil, fmt.Errorf("%w on process %d: interrupted; gdb unwound any call in progress and detached", ErrCaptureRun, pid)
	}
	switch {
	case strings.Contains(text, "ptrace: Operation not permitted"):
		return nil, fmt.Errorf("attaching gdb to process %d: %w: needs the same uid and kernel.yama.ptrace_scope ≤ 1 (see /proc/sys/kernel/yama/ptrace_scope), or CAP_SYS_PTRACE (e.g. sudo); in a container, the capability SYS_PTRACE", pid, ErrNoPtrace)
	case strings.Contains(text, "No such process"):
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case strings.Contains(text, `No symbol "malloc_info"`), strings.Contains(text, `No symbol "fmemopen"`):
		return nil, fmt.Errorf("process %d: %w: gdb finds no malloc_info symbol", pid, ErrNotGlibc)
	case strings.Contains(text, "memdiag: mmap failed"), strings.Contains(text, "memdiag: fmemopen failed"):
		return nil, fmt.Errorf("%w: process %d could not make a %d MiB buffer for the document (out of memory or address space?)", ErrCaptureRun, pid, MaxCapture>>20)
	case !strings.Contains(text, "memdiag: malloc_info returned 0"):
		return nil, fmt.Errorf("%w on process %d (%v); gdb said: %s", ErrCaptureRun, pid, runErr, lastLines(text, 4))
	case res.err != nil:
		return nil, fmt.Errorf("%w: reading the document of process %d: %v", ErrCaptureRun, pid, res.err)
	case len(res.doc) >= MaxCapture-captureSlack-1: // full (fmemopen may keep a byte for its NUL)
		return nil, fmt.Errorf("%w: the malloc_info document of process %d fills the %d MiB buffer: too large to read whole", ErrCaptureRun, pid, MaxCapture>>20)
	}
	return Parse(bytes.NewReader(res.doc), fmt.Sprintf("malloc_info of process %d", pid))
}

// captureSlack is the end of the buffer kept out of fmemopen's reach: the
// mode string lives there.
const captureSlack = 4096

// captureScript is fed to gdb on a pipe; %[1]d is the buffer size, %[2]d
// the size fmemopen may fill, and the most gdb copies whatever ftell in
// the target says (gdb reads the whole range into its own memory first).
// The buffer is anonymous memory of the
// target's own (no malloc, so the arenas measured are not disturbed beyond
// the FILE that fmemopen allocates), untouched pages are never resident,
// and the document goes to memdiag's pipe on gdb's descriptor 3. Every
// call's result is checked: malloc_info(0, NULL) would crash the target.
var captureScript = fmt.Sprintf(`set confirm off
set pagination off
set unwindonsignal on
set language c
sharedlibrary libc\.so
set $memdiag_buf = (char *) mmap(0, %[1]d, 3, 0x22, -1, 0)
if $memdiag_buf == (char *) -1 || $memdiag_buf == 0
  printf "memdiag: mmap failed\n"
else
  set *(char *)($memdiag_buf + %[2]d) = 'w'
  set *(char *)($memdiag_buf + %[2]d + 1) = 0
  set $memdiag_fp = (void *) fmemopen($memdiag_buf, %[2]d, $memdiag_buf + %[2]d)
  if $memdiag_fp == 0
    printf "memdiag: fmemopen failed\n"
  else
    set $memdiag_rc = (int) malloc_info(0, $memdiag_fp)
    set $memdiag_len = (long) ftell($memdiag_fp)
    set $memdiag_closed = (int) fclose($memdiag_fp)
    if $memdiag_len > 0 && $memdiag_len <= %[2]d
      dump binary memory /dev/fd/3 $memdiag_buf $memdiag_buf + $memdiag_len
    end
    printf "memdiag: malloc_info returned %%d, %%ld bytes, fclose %%d\n", $memdiag_rc, $memdiag_len, $memdiag_closed
  end
  set $memdiag_unmapped = (int) munmap($memdiag_buf, %[1]d)
end
`, MaxCapture, MaxCapture-captureSlack)

type gdbResult struct {
	log []byte // gdb's stdout and stderr
	doc []byte // what came on descriptor 3
	err error  // reading descriptor 3
}

// runGDB runs script against pid. The script reaches gdb as a memfd (as
// -x /dev/fd/4), never through a named file, and gdb's descriptor 3 is a pipe
// read here, at most MaxCapture bytes. gdb reads no init files and loads
// no auto-load scripts, no debuginfod downloads and only libc's symbols:
// the target's files are the target user's, and the process is paused
// from attach to detach. detach and quit follow the script as separate
// commands, so they run even if the script stops at an error. At the
// deadline (or ctx's end) gdb gets SIGINT, which interrupts the injected
// call (unwound, see unwindonsignal); if gdb has not exited 10 s later it
// is killed.
func runGDB(ctx context.Context, gdb string, pid int, script string, timeout time.Duration) (gdbResult, error) {
	docR, docW, err := os.Pipe()
	if err != nil {
		return gdbResult{}, err
	}
	// gdb seeks in its command files, so the script is a memfd, not a pipe.
	scriptFile, err := scriptMemfd(script)
	if err != nil {
		docR.Close()
		docW.Close()
		return gdbResult{}, err
	}
	defer scriptFile.Close()
	cmd := exec.Command(gdb, "-nx", "-batch",
		"-iex", "set auto-load off", "-iex", "set debuginfod enabled off",
		"-iex", "set auto-solib-add off", "-iex", "set history save off",
		"-p", strconv.Itoa(pid), "-x", "/dev/fd/4", "-ex", "detach", "-ex", "quit")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{docW, scriptFile}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // our Ctrl-C is not gdb's
	err = cmd.Start()
	docW.Close()
	if err != nil {
		docR.Close()
		return gdbResult{}, fmt.Errorf("starting gdb: %w", err)
	}
	docDone := make(chan gdbResult, 1)
	go func() {
		var r gdbResult
		r.doc, r.err = io.ReadAll(io.LimitReader(docR, MaxCapture))
		_, _ = io.Copy(io.Discard, docR) // never block gdb
		docR.Close()
		docDone <- r
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	finish := func(err error) (gdbResult, error) {
		r := <-docDone
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

// scriptMemfd returns an anonymous in-memory file holding script: it has
// no name in any directory, so nobody can swap it.
func scriptMemfd(script string) (*os.File, error) {
	fd, err := unix.MemfdCreate("memdiag-gdb-script", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("creating gdb's script: %w", err)
	}
	f := os.NewFile(uintptr(fd), "gdb script")
	if _, err := io.WriteString(f, script); err != nil {
		f.Close()
		return nil, fmt.Errorf("writing gdb's script: %w", err)
	}
	return f, nil
}

// isStopped reports whether the process is in the stopped state (T).
func isStopped(proc string) bool {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
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
func ensureRunning(proc string, pid int) {
	if isStopped(proc) {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

// commName is the command name of pid, or "unknown".
func commName(procRoot string, pid int) string {
	ids, err := procstatus.Read(filepath.Join(procRoot, strconv.Itoa(pid)), pid)
	if err != nil || ids.Name == "" {
		return "unknown"
	}
	return ids.Name
}

// checkGlibc looks for glibc's libc.so among the process's mappings.
func checkGlibc(procRoot string, pid int) error {
	path, err := procmaps.Find(procRoot, pid, func(p string) bool {
		return strings.HasSuffix(p, "/libc.so.6") || strings.Contains(p, "/libc-2.") || strings.Contains(p, "/ld-musl")
	})
	switch {
	case errors.Is(err, procmaps.ErrNoProcess):
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case errors.Is(err, procmaps.ErrPermission):
		return fmt.Errorf("process %d: %w: reading its maps needs the same uid or CAP_SYS_PTRACE", pid, ErrNoPtrace)
	case err != nil:
		return err
	case strings.Contains(path, "/ld-musl"):
		return fmt.Errorf("process %d: %w: it uses musl libc, which has no malloc_info", pid, ErrNotGlibc)
	case path == "":
		return fmt.Errorf("process %d: %w: no libc.so.6 mapped (statically linked, or another libc): malloc_info unavailable", pid, ErrNotGlibc)
	}
	return nil
}

// ErrGoProgram means the process is a Go program: gdb's injected call
// would run on whatever stack the stopped thread is on, which in Go may be
// a goroutine's stack of a few KiB — malloc_info could overflow it and
// crash the program.
var ErrGoProgram = errors.New("process is a Go program")

// checkNotGo refuses a Go executable (one with a .go.buildinfo section).
func checkNotGo(proc string, pid int) (err error) {
	f, err := elf.Open(filepath.Join(proc, "exe"))
	if err != nil {
		return nil // unreadable or not ELF: gdb will say what it finds
	}
	defer f.Close()
	defer func() {
		if recover() != nil { // a malformed ELF: not a Go build either
			err = nil
		}
	}()
	if f.Section(".go.buildinfo") != nil {
		return fmt.Errorf("process %d: %w: calling malloc_info inside it could overflow a goroutine's stack, so memdiag will not; Go's heap is in its runtime metrics (runtime/metrics, /debug/pprof/heap, GODEBUG=gctrace=1), and cgo's C allocations in a malloc_info the program logs itself", pid, ErrGoProgram)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
