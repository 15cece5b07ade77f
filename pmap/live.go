package pmap

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/procfs"

	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/proc"
)

// Errors of live reads, for errors.Is.
var (
	// ErrNoProcess means no process has that id (or it is hidden from us).
	ErrNoProcess = proc.ErrNoProcess
	// ErrExited means the process exited (or its id was reused) while memdiag read it.
	ErrExited = errors.New("process exited during the read")
	// ErrNoAddressSpace means the process has no user memory: a kernel thread or a zombie.
	ErrNoAddressSpace = errors.New("process has no user address space")
	// ErrPermission means the caller may not read the process's memory maps.
	ErrPermission = proc.ErrPermission
)

// AccessError explains a refused read of a process and what privilege it needs.
type AccessError struct {
	PID  int
	Path string
	UID  int // the process's real uid, or -1 if unknown
	Err  error
}

func (e *AccessError) Error() string {
	if e.UID >= 0 && e.UID == os.Geteuid() {
		// Same uid and still refused: naming the uid would not help.
		return fmt.Sprintf("reading %s: permission denied although memdiag runs as process %d's own uid %d: the process is not dumpable (setuid, or prctl PR_SET_DUMPABLE 0), memdiag lacks CAP_SYS_PTRACE in its namespace (a container without SYS_PTRACE), or a security module (Yama ptrace_scope 3, SELinux, AppArmor) forbids it",
			e.Path, e.PID, e.UID)
	}
	owner := ""
	if e.UID >= 0 {
		owner = fmt.Sprintf(" (it runs as uid %d, you are uid %d)", e.UID, os.Geteuid())
	}
	return fmt.Sprintf("reading %s: permission denied: process %d's memory maps need the same uid%s or CAP_SYS_PTRACE (e.g. sudo); a non-dumpable process (setuid, or prctl PR_SET_DUMPABLE 0) needs CAP_SYS_PTRACE even from its own uid",
		e.Path, e.PID, owner)
}

func (e *AccessError) Unwrap() error { return ErrPermission }

// FS reads live processes from a proc filesystem.
type FS struct {
	root   string
	procfs procfs.FS
}

// NewFS returns an FS rooted at root, normally "/proc". Tests may point it
// at a copy of a /proc tree.
func NewFS(root string) (FS, error) {
	p, err := procfs.NewFS(root)
	if err != nil {
		return FS{}, fmt.Errorf("opening proc filesystem at %s: %w", root, err)
	}
	return FS{root: root, procfs: p}, nil
}

// Process is what ReadPID gathered from a live process.
type Process struct {
	PID      int
	Command  string // from /proc/<pid>/comm
	UID      int
	Mappings []Mapping
	// Hints holds the live evidence for Classify: each thread's stack pointer.
	Hints Hints
	// Check compares the sum over mappings with the kernel's own totals.
	Check RSSCheck
	// Notes say what could not be gathered and what that costs.
	Notes []string
}

// RSSCheck compares Σ Rss over the mappings with VmRSS from status (read
// before and after). smaps is not an atomic snapshot, so the figures of a
// busy process differ a little. smaps_rollup is not read: it would walk
// the page tables a second time, as long again as smaps for a large
// process, to sum what smaps has just given.
type RSSCheck struct {
	SmapsRSSBytes    uint64
	VmRSSBeforeBytes uint64
	VmRSSAfterBytes  uint64
	// ToleranceBytes is how far apart the figures may be before Consistent is
	// false: how far VmRSS moved during the read, plus 1 % and 1 MiB for the
	// kernel's batched counters.
	ToleranceBytes uint64
	Consistent     bool
	Available      bool // false when status could not be read
}

// ReadPID reads /proc/<pid>/smaps and the evidence around it. The mappings
// are not yet classified: call Classify with Hints (plus any evidence of
// your own) once all is gathered.
func (fsys FS) ReadPID(pid int) (*Process, error) {
	proc, err := fsys.procfs.Proc(pid)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
		}
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	p := &Process{PID: pid, UID: -1}
	startBefore, err := fsys.startTime(pid)
	if err != nil {
		return nil, err
	}
	statusBefore, statusErr := proc.NewStatus()
	if statusErr == nil {
		p.UID = int(statusBefore.UIDs[0])
	}
	if comm, err := proc.Comm(); err == nil {
		p.Command = comm
	}

	path := filepath.Join(fsys.root, strconv.Itoa(pid), "smaps")
	f, err := os.Open(path)
	if err != nil {
		return nil, fsys.openError(pid, path, p.UID, err)
	}
	// What classifying needs besides smaps is read on the other core while
	// the kernel walks the page tables for smaps: for a large process that
	// walk is nearly the whole cost, and these reads then cost nothing.
	side := make(chan liveHints, 1)
	go func() { side <- fsys.readHints(pid) }()
	pr := newPrefetchReader(f)
	ms, parseErr := parseSmaps(pr, path, fsys.countMappings(pid))
	hints := <-side
	pr.Close()
	f.Close()

	// Whatever the parse said, a process that is gone now may have been
	// gone mid-read: the kernel then ends smaps early, which would pass for
	// a smaller address space.
	startAfter, err := fsys.startTime(pid)
	if err != nil || startAfter != startBefore {
		return nil, fmt.Errorf("process %d: %w: its smaps may be incomplete, run again", pid, ErrExited)
	}
	if parseErr != nil {
		if errors.Is(parseErr, ErrEmpty) {
			return nil, fmt.Errorf("process %d (%s): %w: a kernel thread or a zombie", pid, p.Command, ErrNoAddressSpace)
		}
		if errors.Is(parseErr, syscall.ESRCH) {
			return nil, fmt.Errorf("process %d: %w: %w", pid, ErrExited, parseErr)
		}
		return nil, parseErr
	}
	p.Mappings = ms

	p.Hints.MainTID = pid
	p.Hints.GoProgram = hints.goProgram
	p.Hints.StackPointers = hints.stackPointers
	if hints.note != "" {
		p.Notes = append(p.Notes, hints.note)
	}

	statusAfter, statusAfterErr := proc.NewStatus()
	if statusErr == nil && statusAfterErr == nil {
		p.Check = newRSSCheck(ms, statusBefore.VmRSS, statusAfter.VmRSS)
	} else {
		p.Notes = append(p.Notes, "RSS cross-check skipped: status unreadable")
	}
	return p, nil
}

// liveHints is the evidence beside smaps that Classify uses.
type liveHints struct {
	goProgram     bool
	stackPointers map[uint64]int
	note          string // what was missed
}

func (fsys FS) readHints(pid int) liveHints {
	h := liveHints{goProgram: elfinfo.IsGoFile(filepath.Join(fsys.root, strconv.Itoa(pid), "exe"), 500*time.Millisecond)}
	h.stackPointers, h.note = fsys.stackPointers(pid)
	return h
}

// countMappings counts the lines of /proc/<pid>/maps (0 when unreadable):
// the room for smaps' mappings. maps walks the mappings, not their page
// tables: 60,000 mappings take a few milliseconds.
func (fsys FS) countMappings(pid int) int {
	f, err := os.Open(filepath.Join(fsys.root, strconv.Itoa(pid), "maps"))
	if err != nil {
		return 0
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := f.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err != nil || n > 1<<22 {
			return min(n, 1<<22)
		}
	}
}

// newRSSCheck compares Σ Rss with VmRSS (the kernel's counters, read before
// and after). How far VmRSS moved meanwhile is how far the figures may
// differ.
func newRSSCheck(ms []Mapping, vmRSSBefore, vmRSSAfter uint64) RSSCheck {
	c := RSSCheck{VmRSSBeforeBytes: vmRSSBefore, VmRSSAfterBytes: vmRSSAfter, Available: true}
	for i := range ms {
		c.SmapsRSSBytes += ms[i].Bytes(FieldRss)
	}
	lo, hi := min(vmRSSBefore, vmRSSAfter), max(vmRSSBefore, vmRSSAfter)
	c.ToleranceBytes = hi - lo + hi/100 + 1<<20
	within := func(v uint64) bool { return v+c.ToleranceBytes >= lo && v <= hi+c.ToleranceBytes }
	c.Consistent = within(c.SmapsRSSBytes)
	return c
}

// startTime returns the process's start time from /proc/<pid>/stat, which
// tells the same process from a later one that reused its id.
func (fsys FS) startTime(pid int) (string, error) {
	start, state, err := proc.StartTime(filepath.Join(fsys.root, strconv.Itoa(pid)))
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
		return "", fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case err != nil:
		return "", fmt.Errorf("process %d: %w", pid, err)
	case state == "Z" || state == "X":
		return "", fmt.Errorf("process %d: %w: it is a zombie", pid, ErrNoAddressSpace)
	}
	return start, nil
}

func (fsys FS) openError(pid int, path string, uid int, err error) error {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return &AccessError{PID: pid, Path: path, UID: uid, Err: err}
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
		return fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	return fmt.Errorf("opening %s: %w", path, err)
}

// stackPointers reads each thread's user stack pointer from
// /proc/<pid>/task/<tid>/syscall ("nr args… sp pc", "-1 sp pc" outside a
// system call, or "running"). Reading it needs ptrace-attach permission; a
// thread that is running has no recorded pointer. The note says what was missed.
func (fsys FS) stackPointers(pid int) (map[uint64]int, string) {
	taskDir := filepath.Join(fsys.root, strconv.Itoa(pid), "task")
	entries, err := os.ReadDir(taskDir)
	if err != nil {
		return nil, fmt.Sprintf("thread stacks found by pattern only: %s unreadable (%v)", taskDir, err)
	}
	sps := make(map[uint64]int, len(entries))
	denied, running := 0, 0
	for _, e := range entries {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(taskDir, e.Name(), "syscall"))
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				denied++
			}
			continue // thread exited, or denied
		}
		fields := strings.Fields(string(b))
		if len(fields) < 3 {
			running++
			continue
		}
		sp, err := strconv.ParseUint(strings.TrimPrefix(fields[len(fields)-2], "0x"), 16, 64)
		if err != nil || sp == 0 {
			continue
		}
		sps[sp] = tid
	}
	switch {
	case denied > 0:
		return sps, fmt.Sprintf("thread stacks of %d threads found by pattern only: /proc/%d/task/*/syscall needs ptrace-attach permission (same uid and kernel.yama.ptrace_scope ≤ 1, or CAP_SYS_PTRACE)", denied, pid)
	case running > 0:
		return sps, fmt.Sprintf("%d threads were running while read: their stacks found by pattern only", running)
	}
	return sps, ""
}
