package mallocinfo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// Capture returns the malloc_info document of process pid, parsed.
func (c Capturer) Capture(ctx context.Context, pid int) (*Info, error) {
	doc, err := c.CaptureDocument(ctx, pid)
	if err != nil {
		return nil, err
	}
	return Parse(bytes.NewReader(doc), fmt.Sprintf("malloc_info of process %d", pid))
}

// CaptureDocument returns the malloc_info document of process pid as the
// process wrote it, at most MaxCapture bytes: what a user keeps (--save).
func (c Capturer) CaptureDocument(ctx context.Context, pid int) ([]byte, error) {
	proc := filepath.Join(c.procRoot(), strconv.Itoa(pid))
	if err := checkNotGo(proc, pid); err != nil {
		return nil, err
	}
	libc, err := checkGlibc(c.procRoot(), pid)
	if err != nil {
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
	before, err := readIdentity(proc)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	if c.Notify != nil {
		c.Notify(fmt.Sprintf("attaching gdb to process %d (%s) to call malloc_info; it pauses while attached (at most %v)", pid, ids.Name, timeout))
	}
	wasStopped := isStopped(proc)
	script := captureScript(filepath.Base(libc))
	res, runErr := runGDBAs(ctx, gdb, proc, pid, script, timeout, ids, before)
	if !wasStopped {
		ensureRunning(proc, pid)
	}
	// The pid checked is not always the process gdb reached: between the
	// checks and the attach it may have exec'd another program (a setuid
	// one, say) or exited and had its pid reused. Its figures are then
	// not the target's.
	if after, err := readIdentity(proc); err == nil && after != before {
		return nil, fmt.Errorf("%w: process %d changed while it was captured (%s): the result is discarded", ErrCaptureRun, pid, before.change(after))
	}

	if err := gdbFailure(pid, res, runErr); err != nil {
		return nil, err
	}
	return res.doc, nil
}

// gdbFailure reads what gdb said and did, and returns why the capture
// failed, or nil when res holds the whole document.
func gdbFailure(pid int, res gdbResult, runErr error) error {
	text := string(res.log)
	switch {
	case errors.Is(runErr, context.Canceled):
		// The user asked to stop: whatever gdb got to, say so.
		return fmt.Errorf("%w on process %d: interrupted; gdb unwound any call in progress and detached", ErrCaptureRun, pid)
	case text == "" && runErr != nil:
		return runErr // refused before gdb ran
	case strings.Contains(text, "ptrace: Operation not permitted"):
		return fmt.Errorf("attaching gdb to process %d: %w: needs the same uid and kernel.yama.ptrace_scope ≤ 1 (see /proc/sys/kernel/yama/ptrace_scope), or CAP_SYS_PTRACE (e.g. sudo); in a container, the capability SYS_PTRACE", pid, ErrNoPtrace)
	case strings.Contains(text, "No such process"):
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case strings.Contains(text, `No symbol "malloc_info"`), strings.Contains(text, `No symbol "fmemopen"`):
		return fmt.Errorf("process %d: %w: gdb finds no malloc_info symbol", pid, ErrNotGlibc)
	case strings.Contains(text, "memdiag: mmap failed"), strings.Contains(text, "memdiag: fmemopen failed"):
		return fmt.Errorf("%w: process %d could not make a %d MiB buffer for the document (out of memory or address space?)", ErrCaptureRun, pid, MaxCapture>>20)
	case !strings.Contains(text, "memdiag: malloc_info returned 0"):
		return fmt.Errorf("%w on process %d (%v); gdb said: %s", ErrCaptureRun, pid, runErr, lastLines(text, 4))
	case res.err != nil:
		return fmt.Errorf("%w: reading the document of process %d: %v", ErrCaptureRun, pid, res.err)
	case len(res.doc) >= MaxCapture-captureSlack-1: // full (fmemopen may keep a byte for its NUL)
		return fmt.Errorf("%w: the malloc_info document of process %d fills the %d MiB buffer: too large to read whole", ErrCaptureRun, pid, MaxCapture>>20)
	}
	return nil
}

// captureSlack is the end of the buffer kept out of fmemopen's reach: the
// mode string lives there.
const captureSlack = 4096

// captureScript is what gdb runs: libc is the base name of the process's
// glibc (libc.so.6), so that only that library's symbols are loaded and no
// other library whose name merely contains "libc.so" is. The buffer is
// MaxCapture bytes; fmemopen may fill all but captureSlack, and gdb copies
// at most that much whatever ftell in the target says (gdb reads the whole
// range into its own memory first). The buffer is anonymous memory of the
// target's own (no malloc, so the arenas measured are not disturbed beyond
// the FILE that fmemopen allocates), untouched pages are never resident,
// and the document goes to memdiag's pipe on gdb's descriptor 3. Every
// call's result is checked: malloc_info(0, NULL) would crash the target.
func captureScript(libc string) string {
	return fmt.Sprintf(`set confirm off
set pagination off
set unwindonsignal on
set language c
sharedlibrary /%[3]s$
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
`, MaxCapture, MaxCapture-captureSlack, libcPattern(libc))
}

// libcPattern escapes libc's base name for gdb's (POSIX basic) regular
// expressions; a name with anything but letters, digits, dots and dashes
// is not glibc's, and gets the name glibc has had since 2.34.
func libcPattern(libc string) string {
	for _, r := range libc {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			libc = "libc.so.6"
			break
		}
	}
	return strings.ReplaceAll(libc, ".", `\.`)
}

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
func runGDB(ctx context.Context, gdb string, pid int, script string, timeout time.Duration, cred *syscall.Credential) (gdbResult, error) {
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
	var out cappedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{docW, scriptFile}
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: cred} // our Ctrl-C is not gdb's
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
func runGDBAs(ctx context.Context, gdb, proc string, pid int, script string, timeout time.Duration, ids procstatus.IDs, before identity) (gdbResult, error) {
	if os.Geteuid() != 0 || ids.UID == 0 {
		return runGDB(ctx, gdb, pid, script, timeout, nil)
	}
	if ids.GID < 0 {
		return gdbResult{}, fmt.Errorf("process %d: %w: its gid is unknown", pid, ErrNoPtrace)
	}
	groups := make([]uint32, len(ids.Groups))
	for i, g := range ids.Groups {
		groups[i] = uint32(g)
	}
	cred := &syscall.Credential{Uid: uint32(ids.UID), Gid: uint32(ids.GID), Groups: groups}
	res, err := runGDB(ctx, gdb, pid, script, timeout, cred)
	if !bytes.Contains(res.log, []byte("ptrace: Operation not permitted")) {
		return res, err
	}
	now, idErr := readIdentity(proc)
	switch {
	case idErr != nil:
		return res, err
	case now != before:
		return gdbResult{}, fmt.Errorf("%w: process %d changed before gdb could attach (%s): memdiag will not trace it as root", ErrCaptureRun, pid, before.change(now))
	case !now.dumpable:
		return gdbResult{}, fmt.Errorf("process %d: %w: it is not dumpable (it set PR_SET_DUMPABLE 0, or runs a setuid program), so its own user cannot trace it, and memdiag will not trace it as root", pid, ErrNoPtrace)
	case yamaScope() < 1:
		return res, err
	}
	return runGDB(ctx, gdb, pid, script, timeout, nil)
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

func readIdentity(proc string) (identity, error) {
	var id identity
	stat, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return id, err
	}
	if i := bytes.LastIndexByte(stat, ')'); i > 0 {
		if f := strings.Fields(string(stat[i+1:])); len(f) > 19 {
			id.start = f[19] // field 22, after pid and comm
		}
	}
	ids, err := procstatus.Read(proc, 0)
	if err != nil {
		return id, err
	}
	id.comm, id.uids = ids.Name, ids.UIDs
	var st syscall.Stat_t
	if err := syscall.Stat(proc, &st); err != nil {
		return id, err
	}
	id.dumpable = st.Uid != 0 || ids.UID == 0
	if err := syscall.Stat(filepath.Join(proc, "exe"), &st); err != nil {
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

// checkGlibc looks for glibc's libc.so among the process's mappings and
// returns its path.
func checkGlibc(procRoot string, pid int) (string, error) {
	path, err := procmaps.Find(procRoot, pid, func(p string) bool {
		return strings.HasSuffix(p, "/libc.so.6") || strings.Contains(p, "/libc-2.") || strings.Contains(p, "/ld-musl")
	})
	switch {
	case errors.Is(err, procmaps.ErrNoProcess):
		return "", fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case errors.Is(err, procmaps.ErrPermission):
		return "", fmt.Errorf("process %d: %w: reading its maps needs the same uid or CAP_SYS_PTRACE", pid, ErrNoPtrace)
	case err != nil:
		return "", err
	case strings.Contains(path, "/ld-musl"):
		return "", fmt.Errorf("process %d: %w: it uses musl libc, which has no malloc_info", pid, ErrNotGlibc)
	case path == "":
		return "", fmt.Errorf("process %d: %w: no libc.so.6 mapped (statically linked, or another libc): malloc_info unavailable", pid, ErrNotGlibc)
	}
	return path, nil
}

// ErrGoProgram means the process is a Go program: gdb's injected call
// would run on whatever stack the stopped thread is on, which in Go may be
// a goroutine's stack of a few KiB — malloc_info could overflow it and
// crash the program.
var ErrGoProgram = errors.New("process is a Go program")

// checkNotGo refuses a Go executable (one with a .go.buildinfo section).
func checkNotGo(proc string, pid int) error {
	f, err := os.Open(filepath.Join(proc, "exe"))
	if err != nil {
		return nil // unreadable: gdb will say what it finds
	}
	defer f.Close()
	if names, err := sectionNames(f); err == nil && slices.Contains(names, ".go.buildinfo") {
		return fmt.Errorf("process %d: %w: calling malloc_info inside it could overflow a goroutine's stack, so memdiag will not; Go's heap is in its runtime metrics (runtime/metrics, /debug/pprof/heap, GODEBUG=gctrace=1), and cgo's C allocations in a malloc_info the program logs itself", pid, ErrGoProgram)
	}
	return nil
}

// Bounds of sectionNames: the executable is the target user's file, and
// debug/elf would read a section-name table of any size it claims.
const (
	maxSections    = 1 << 12
	maxSectionText = 1 << 20
)

// sectionNames returns the section names of a 64-bit little-endian ELF
// file, reading only its header, section headers and name table, each
// bounded.
func sectionNames(r io.ReaderAt) ([]string, error) {
	var hdr [64]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	if string(hdr[:4]) != "\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
		return nil, errors.New("not a 64-bit little-endian ELF file")
	}
	le := binary.LittleEndian
	shoff, shentsize := le.Uint64(hdr[0x28:]), int(le.Uint16(hdr[0x3a:]))
	shnum, shstrndx := int(le.Uint16(hdr[0x3c:])), int(le.Uint16(hdr[0x3e:]))
	if shentsize != 64 || shnum > maxSections || shstrndx >= shnum || shoff > 1<<40 {
		return nil, errors.New("section headers out of bounds")
	}
	headers := make([]byte, shnum*64)
	if _, err := r.ReadAt(headers, int64(shoff)); err != nil {
		return nil, err
	}
	strtab := headers[shstrndx*64:]
	off, size := le.Uint64(strtab[0x18:]), le.Uint64(strtab[0x20:])
	if size > maxSectionText || off > 1<<40 {
		return nil, errors.New("section name table out of bounds")
	}
	text := make([]byte, size)
	if _, err := r.ReadAt(text, int64(off)); err != nil {
		return nil, err
	}
	names := make([]string, 0, shnum)
	for i := 0; i < shnum; i++ {
		at := int(le.Uint32(headers[i*64:]))
		if at >= len(text) {
			continue
		}
		name := text[at:]
		if z := bytes.IndexByte(name, 0); z >= 0 {
			name = name[:z]
		}
		names = append(names, string(name))
	}
	return names, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
