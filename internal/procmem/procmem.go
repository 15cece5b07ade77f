// Package procmem reads a live process's memory without running anything
// in it: /proc/PID/mem, opened through a descriptor of the process's own
// /proc directory (so a pid reused meanwhile is never read), and a
// consistent snapshot taken with every thread stopped by PTRACE_SEIZE and
// PTRACE_INTERRUPT — never SIGSTOP, never a register written — and
// resumed by PTRACE_DETACH, which restarts any system call the stop
// interrupted exactly as the kernel would after a signal.
//
// Everything read is the target's to decide: callers treat it as hostile
// input.
package procmem

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
)

// Errors of Open and Freeze, for errors.Is.
var (
	// ErrNoProcess: no process has that pid, or it exited.
	ErrNoProcess = proc.ErrNoProcess
	// ErrPermission: the caller may not read or stop the process.
	ErrPermission = proc.ErrPermission
	// ErrZombie: the process has exited and awaits its parent; its memory
	// is gone.
	ErrZombie = errors.New("process has exited (a zombie)")
	// ErrUnmapped: an address the process has no readable memory at.
	ErrUnmapped = errors.New("no memory at that address")
)

// needs says what reading or stopping another process takes.
const needs = "reading a process's memory needs its uid with kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE (run as root); in a container, the capability SYS_PTRACE"

// Process is a live process opened for reading. Its descriptors stay
// bound to the process opened: if it exits, reads fail; a new process
// with the same pid is never reached.
type Process struct {
	PID   int
	fs    proc.FS  // the proc filesystem
	dir   *os.File // /proc/PID
	mem   *os.File // /proc/PID/mem
	start string   // start time, field 22 of stat
	vec   vector   // ReadVec's
}

// Open opens process pid of the proc filesystem fsys.
func Open(fsys proc.FS, pid int) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	dir, err := os.OpenFile(fsys.Dir(pid), os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	}
	p := &Process{PID: pid, fs: fsys, dir: dir}
	start, state, err := p.stat()
	if err != nil {
		dir.Close()
		return nil, err
	}
	if state == 'Z' || state == 'X' {
		dir.Close()
		return nil, fmt.Errorf("process %d: %w", pid, ErrZombie)
	}
	p.start = start
	mem, err := p.openAt("mem")
	if err != nil {
		dir.Close()
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("process %d: %w: %s", pid, ErrPermission, needs)
		}
		return nil, fmt.Errorf("process %d: opening its memory: %w", pid, err)
	}
	p.mem = mem
	return p, nil
}

// Dir is the process's directory under the proc filesystem, "/proc/PID".
func (p *Process) Dir() string { return p.dir.Name() }

// Close releases the process's descriptors.
func (p *Process) Close() error {
	p.closeVector()
	err := p.mem.Close()
	if e := p.dir.Close(); err == nil {
		err = e
	}
	return err
}

// ReadAt reads len(b) bytes of the process's memory at addr. A read that
// reaches memory the process has not mapped fails with ErrUnmapped; a
// process that exited, with ErrNoProcess.
func (p *Process) ReadAt(b []byte, addr int64) (int, error) {
	n, err := p.mem.ReadAt(b, addr)
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, unix.EIO), errors.Is(err, unix.EFAULT), errors.Is(err, io.EOF), errors.Is(err, unix.EINVAL):
		return n, fmt.Errorf("process %d: %d bytes at %#x: %w", p.PID, len(b), addr, ErrUnmapped)
	case errors.Is(err, unix.ESRCH):
		return n, fmt.Errorf("process %d: %w (it exited while being read)", p.PID, ErrNoProcess)
	}
	return n, fmt.Errorf("process %d: reading %d bytes at %#x: %w", p.PID, len(b), addr, err)
}

// Maps reads the process's mappings.
func (p *Process) Maps() ([]proc.Mapping, error) {
	f, err := p.openAt("maps")
	if err != nil {
		return nil, p.gone(err)
	}
	defer f.Close()
	maps, err := proc.ParseMaps(f, fmt.Sprintf("/proc/%d/maps", p.PID))
	if err != nil {
		return nil, err
	}
	if len(maps) == 0 {
		// A process that exited between the open and the read has an
		// empty maps file.
		if err := p.Alive(); err != nil {
			return nil, err
		}
	}
	return maps, nil
}

// Alive reports, as an error, whether the process opened is gone: exited
// (a zombie, or reaped) or replaced by another with its pid.
func (p *Process) Alive() error {
	start, state, err := p.stat()
	switch {
	case err != nil:
		return err
	case start != p.start:
		return fmt.Errorf("process %d: %w (its pid now belongs to another process)", p.PID, ErrNoProcess)
	case state == 'Z' || state == 'X':
		return fmt.Errorf("process %d: %w", p.PID, ErrZombie)
	}
	return nil
}

// stat returns the start time and state from the process's stat.
func (p *Process) stat() (start string, state byte, err error) {
	f, err := p.openAt("stat")
	if err != nil {
		return "", 0, p.gone(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	n, err := f.Read(b)
	if err != nil {
		return "", 0, p.gone(err)
	}
	start, st, err := proc.ParseStartTime(b[:n], fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return "", 0, err
	}
	return start, st[0], nil // the state field is one letter
}

// gone turns a failed read of the process's own files into ErrNoProcess.
func (p *Process) gone(err error) error {
	if errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("process %d: %w (it exited)", p.PID, ErrNoProcess)
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		return fmt.Errorf("process %d: %w: %s", p.PID, ErrPermission, needs)
	}
	return fmt.Errorf("process %d: %w", p.PID, err)
}

func (p *Process) openAt(name string) (*os.File, error) {
	fd, err := unix.Openat(int(p.dir.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: fmt.Sprintf("/proc/%d/%s", p.PID, name), Err: err}
	}
	return os.NewFile(uintptr(fd), fmt.Sprintf("/proc/%d/%s", p.PID, name)), nil
}

// tracer names the process that ptrace-attached to this one, "" if none.
func (p *Process) tracer() string {
	f, err := p.openAt("status")
	if err != nil {
		return ""
	}
	defer f.Close()
	ids, err := proc.ParseStatus(f, fmt.Sprintf("/proc/%d/status", p.PID), p.PID)
	if err != nil || ids.TracerPID == 0 {
		return ""
	}
	pid := ids.TracerPID
	comm, err := os.ReadFile(p.fs.PIDPath(pid, "comm"))
	name := string(bytes.TrimSpace(comm))
	if err != nil || name == "" {
		name = "unknown"
	}
	return fmt.Sprintf("process %d (%s)", pid, name)
}

// tasks lists the process's thread ids.
func (p *Process) tasks() ([]int, error) {
	f, err := p.openAt("task")
	if err != nil {
		return nil, p.gone(err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, p.gone(err)
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}

// errnoIs reports whether err is the errno e.
func errnoIs(err error, e syscall.Errno) bool { return errors.Is(err, e) }
