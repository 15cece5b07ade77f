package mallocinfo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

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

// Capturer takes malloc_info from a live process: gdb attaches, calls
// malloc_info(0, fp) into a private temporary file, and detaches. The
// process is paused for that time — usually well under a second.
type Capturer struct {
	// GDB is the gdb binary; "" looks it up in PATH.
	GDB string
	// ProcRoot is the proc filesystem, "/proc" when empty.
	ProcRoot string
	// Timeout bounds the whole capture. On expiry gdb is interrupted; with
	// unwindonsignal it unwinds the injected call and detaches. 0 means 30 s.
	Timeout time.Duration
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
	if _, err := os.Stat(proc); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	if err := checkGlibc(proc, pid); err != nil {
		return nil, err
	}
	gdb := c.GDB
	if gdb == "" {
		p, err := exec.LookPath("gdb")
		if err != nil {
			return nil, fmt.Errorf("%w in PATH: live malloc_info capture needs it (apt-get install gdb), or pass a saved malloc_info file", ErrNoGDB)
		}
		gdb = p
	}
	// The owner is asked now so a process that has gone fails here, with
	// its pid, rather than in gdb.
	ids, err := procstatus.Read(proc, pid)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	uid, gid := ids.UID, ids.GID

	// The file is written by the target, so its path must exist in the
	// target's mount namespace: its /tmp, reached through /proc/PID/root.
	ourTmp, theirTmp := filepath.Join(proc, "root", "tmp"), "/tmp"
	dir, err := os.MkdirTemp(ourTmp, "memdiag-malloc-info-")
	if err != nil {
		ourTmp, theirTmp = os.TempDir(), os.TempDir()
		if dir, err = os.MkdirTemp(ourTmp, "memdiag-malloc-info-"); err != nil {
			return nil, fmt.Errorf("creating a temporary directory for the capture: %w", err)
		}
	}
	defer os.RemoveAll(dir)
	if os.Geteuid() == 0 && uid >= 0 {
		// The target must be able to create its file; nobody else may read it.
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("handing %s to uid %d: %w", dir, uid, err)
		}
	}
	outTheirs := filepath.Join(theirTmp, filepath.Base(dir), "malloc_info.xml")
	outOurs := filepath.Join(dir, "malloc_info.xml")

	script := filepath.Join(dir, "capture.gdb")
	// unwindonsignal: if the call is interrupted (timeout), gdb restores the
	// thread's registers instead of leaving it inside malloc_info.
	// The fopen result is checked: malloc_info(0, NULL) would crash the target.
	body := fmt.Sprintf(`set confirm off
set pagination off
set unwindonsignal on
sharedlibrary libc\.so
set $memdiag_fp = (void *) fopen("%s", "w")
if $memdiag_fp != 0
  printf "memdiag: malloc_info returned %%d\n", (int) malloc_info(0, $memdiag_fp)
  printf "memdiag: fclose returned %%d\n", (int) fclose($memdiag_fp)
else
  printf "memdiag: fopen failed\n"
end
detach
quit
`, outTheirs)
	if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
		return nil, err
	}

	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	out, runErr := runGDB(ctx, gdb, pid, script, timeout)
	ensureRunning(proc, pid)

	text := string(out)
	switch {
	case strings.Contains(text, "ptrace: Operation not permitted"):
		return nil, fmt.Errorf("attaching gdb to process %d: %w: needs the same uid and kernel.yama.ptrace_scope ≤ 1 (see /proc/sys/kernel/yama/ptrace_scope), or CAP_SYS_PTRACE (e.g. sudo); in a container, the capability SYS_PTRACE", pid, ErrNoPtrace)
	case strings.Contains(text, "No such process"):
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case strings.Contains(text, `No symbol "malloc_info"`), strings.Contains(text, `No symbol "fopen"`):
		return nil, fmt.Errorf("process %d: %w: gdb finds no malloc_info symbol", pid, ErrNotGlibc)
	case strings.Contains(text, "memdiag: fopen failed"):
		return nil, fmt.Errorf("%w: process %d could not create %s (its /tmp not writable?)", ErrCaptureRun, pid, outTheirs)
	case !strings.Contains(text, "memdiag: malloc_info returned 0"):
		return nil, fmt.Errorf("%w on process %d (%v); gdb said: %s", ErrCaptureRun, pid, runErr, lastLines(text, 4))
	}
	f, err := os.Open(outOurs)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the output of process %d: %v", ErrCaptureRun, pid, err)
	}
	defer f.Close()
	return Parse(f, fmt.Sprintf("malloc_info of process %d", pid))
}

// runGDB runs the script against pid. At the deadline gdb gets SIGINT,
// which interrupts the injected call (unwound, see unwindonsignal); if gdb
// has not exited 10 s later it is killed.
func runGDB(ctx context.Context, gdb string, pid int, script string, timeout time.Duration) ([]byte, error) {
	// Symbols of libc only, and no debuginfod downloads: the process is
	// paused from attach to detach, so gdb must not linger.
	cmd := exec.Command(gdb, "-nx", "-batch",
		"-iex", "set debuginfod enabled off", "-iex", "set auto-solib-add off",
		"-p", strconv.Itoa(pid), "-x", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // our Ctrl-C is not gdb's
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting gdb: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return out.Bytes(), err
	case <-ctx.Done():
	case <-timer.C:
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		return out.Bytes(), fmt.Errorf("timed out after %v, interrupted: %w", timeout, err)
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return out.Bytes(), fmt.Errorf("timed out after %v; gdb killed", timeout)
	}
}

// ensureRunning resumes the target if it was left stopped (a gdb killed
// mid-attach can leave its SIGSTOP pending).
func ensureRunning(proc string, pid int) {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == 'T' {
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
}

// checkGlibc looks for glibc's libc.so among the process's mappings.
func checkGlibc(proc string, pid int) error {
	f, err := os.Open(filepath.Join(proc, "maps"))
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("process %d: %w: reading its maps needs the same uid or CAP_SYS_PTRACE", pid, ErrNoPtrace)
		}
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	musl := false
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "/libc.so.6") || strings.Contains(line, "/libc-2.") {
			return nil
		}
		if strings.Contains(line, "ld-musl") {
			musl = true
		}
	}
	if musl {
		return fmt.Errorf("process %d: %w: it uses musl libc, which has no malloc_info", pid, ErrNotGlibc)
	}
	return fmt.Errorf("process %d: %w: no libc.so.6 mapped (statically linked, or another libc): malloc_info unavailable", pid, ErrNotGlibc)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
