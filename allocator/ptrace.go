package allocator

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/ptracecall"
)

// ErrCanaryFailed means a call made without gdb, in a process of memdiag's
// own, did not leave it unharmed: no target is called into on this host.
var ErrCanaryFailed = errors.New("calls into a process are not safe on this host")

// ptraceCallTimeout is how long a call made without gdb runs before it is
// looked at, when the Injector sets no timeout: one parked on a lock then
// is abandoned, one still working is waited for (ptracecall's Patient).
const ptraceCallTimeout = 10 * time.Second

// PtraceCanary proves, once per memdiag process, that a function called
// in a process of memdiag's own with package ptracecall leaves it
// unharmed: a sleep(1) of 400 ms, stopped in its clock_nanosleep, has
// getpid() called in it and must return its own pid, then end on time
// with status 0. That is the harm gdb 13 does on hosts with AMX (the
// interrupted nanosleep returns errno 516 and sleep exits at once, saying
// "cannot read realtime clock"). A zero PtraceCanary is ready; share one
// pointer between the calls of one run.
type PtraceCanary struct {
	once sync.Once
	err  error
}

// Prove runs the canary the first time and returns its verdict.
func (c *PtraceCanary) Prove() error {
	c.once.Do(func() { c.err = proveOnSleep() })
	return c.err
}

func proveOnSleep() error {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		return fmt.Errorf("%w: no sleep(1) to prove calls on: %v", ErrCanaryFailed, err)
	}
	cmd := exec.Command(sleep, "0.4")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting the canary: %v", ErrCanaryFailed, err)
	}
	pid := cmd.Process.Pid
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// Wait until it sleeps: the call must interrupt its system call, as a
	// call into a real target interrupts that target's.
	for !sleeping(pid) {
		if time.Since(started) > 300*time.Millisecond {
			return fmt.Errorf("%w: the canary did not go to sleep", ErrCanaryFailed)
		}
		time.Sleep(2 * time.Millisecond)
	}
	getpid, err := ptracecall.LookupFunc(pid, "libc.so", "getpid")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCanaryFailed, err)
	}
	ret, err := ptracecall.Call(pid, pid, getpid, nil, ptraceCallTimeout)
	if err != nil {
		return fmt.Errorf("%w: getpid() in a sleep of memdiag's own: %v", ErrCanaryFailed, err)
	}
	if int(ret) != pid {
		return fmt.Errorf("%w: getpid() in a sleep of memdiag's own returned %d, not %d", ErrCanaryFailed, int64(ret), pid)
	}
	err = cmd.Wait()
	waited = true
	took := time.Since(started)
	if err != nil || took < 400*time.Millisecond {
		return fmt.Errorf("%w: a sleep 0.4 of memdiag's own, called into, ended after %v with %v (it said %q): its interrupted system call did not resume as it was", ErrCanaryFailed, took.Round(time.Millisecond), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// sleeping reports whether process pid is asleep in a system call.
func sleeping(pid int) bool {
	_, state, err := proc.StartTime("/proc/" + strconv.Itoa(pid))
	return err == nil && state == "S"
}

// retried runs call again, a few times a moment apart, while the thread it
// borrowed was where a call must not be made (inside a restartable
// sequence, or where glibc blocks every signal): a moment later it is
// elsewhere.
func retried(call func() error) error {
	err := call()
	for i := 0; i < 20 && (errors.Is(err, ptracecall.ErrBusy) || errors.Is(err, ptracecall.ErrSignalBlocked)); i++ {
		time.Sleep(5 * time.Millisecond)
		err = call()
	}
	return err
}

// withoutGDB runs call on process pid after the canary has passed, and
// refuses a result from a process whose pid another took meanwhile.
// gdbErr is why gdb was not used: a refusal of the canary here keeps it,
// so that both verdicts are told.
func (l Live) withoutGDB(pid int, what string, gdbErr error, call func(opts ptraceOptions) error) error {
	if err := l.canary().Prove(); err != nil {
		if gdbErr != nil {
			return fmt.Errorf("%w; without gdb, not calling %s either: %w", gdbErr, what, err)
		}
		return fmt.Errorf("process %d: not calling %s: %w", pid, what, err)
	}
	procDir := "/proc/" + strconv.Itoa(pid)
	id, err := proc.ReadIdentity(procDir)
	if err != nil {
		return fmt.Errorf("process %d: %w", pid, gdbinject.ErrNoProcess)
	}
	before := id.Start
	// Checked again by ptracecall once the thread is stopped, before any
	// call: the addresses were looked up in this program, not in one it
	// exec'd since.
	opts := ptraceOptions{callTimeout: l.callTimeout()}
	opts.Options = ptracecall.Options{StartTime: id.Start, Identity: &id, Patient: true, Notify: l.Injector.Notify}
	// The thread's errno is put back after the calls, which may fail
	// with one (mmap, madvise); a libc without the symbol goes without.
	if fns, err := lookup(pid, "libc.so", "__errno_location"); err == nil {
		opts.ErrnoLocation = fns["__errno_location"]
	}
	if l.Injector.Notify != nil {
		l.Injector.Notify(fmt.Sprintf("calling %s in one thread of process %d without gdb (the thread pauses for the call, the others run)", what, pid))
	}
	err = retried(func() error { return call(opts) })
	if after, _, aerr := proc.StartTime(procDir); aerr != nil || after != before {
		return fmt.Errorf("%w: process %d exited during the call to %s: the result is discarded", gdbinject.ErrRun, pid, what)
	}
	if err != nil {
		return fmt.Errorf("%w: %s in process %d: %w", gdbinject.ErrRun, what, pid, err)
	}
	return nil
}

// ptraceOptions are how the calls of one job borrow a thread, and how
// long each call runs before it is looked at.
type ptraceOptions struct {
	ptracecall.Options
	callTimeout time.Duration
}

// callTimeout is the Injector's timeout, or ptraceCallTimeout.
func (l Live) callTimeout() time.Duration {
	if l.Injector.Timeout > 0 {
		return l.Injector.Timeout
	}
	return ptraceCallTimeout
}

func (l Live) canary() *PtraceCanary {
	if l.Canary != nil {
		return l.Canary
	}
	return &PtraceCanary{}
}

// noGDB reports whether a call goes without gdb: asked for, gdb is not
// there, or gdb failed its canary on this host — each refused before
// anything touched the process.
func (l Live) noGDB(gdbErr error) bool {
	return l.NoGDB || errors.Is(gdbErr, gdbinject.ErrNoGDB) || errors.Is(gdbErr, gdbinject.ErrUnsafeHost)
}

// ptraceSession is one borrowed thread of the target and the functions
// found for it.
type ptraceSession struct {
	c       *ptracecall.Conn
	pid     int
	timeout time.Duration
}

// call calls fn with args and returns its rax.
func (s ptraceSession) call(fn uint64, args ...uint64) (uint64, error) {
	return s.c.Call(fn, args, s.timeout)
}

// cString pushes s, NUL-terminated, onto the scratch stack.
func (s ptraceSession) cString(str string) (uint64, error) {
	return s.c.Push(append([]byte(str), 0))
}

func (s ptraceSession) word(v uint64) (uint64, error) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return s.c.Push(b[:])
}

// callOne makes one call in one thread of the process, with opts.
func callOne(pid int, opts ptraceOptions, fn uint64, args ...uint64) (int, error) {
	var ret uint64
	err := ptracecall.Run(pid, 0, opts.Options, func(c *ptracecall.Conn) error {
		var err error
		ret, err = c.Call(fn, args, opts.callTimeout)
		return err
	})
	return int(int32(ret)), err
}

// lookup finds each of names in the library lib of process pid.
func lookup(pid int, lib string, names ...string) (map[string]uint64, error) {
	found := map[string]uint64{}
	for _, n := range names {
		addr, err := ptracecall.LookupFunc(pid, lib, n)
		if err != nil {
			return nil, err
		}
		found[n] = addr
	}
	return found, nil
}

// jemallocByPtrace reads jemalloc's statistics with mallctl called in one
// thread of the process, its names and values on the scratch stack: the
// lines it returns are those the gdb script prints.
func jemallocByPtrace(pid int, d Detection, opts ptraceOptions) (string, error) {
	fns, err := lookup(pid, soName(d.Library), "mallctl")
	if err != nil {
		return "", err
	}
	var log strings.Builder
	err = ptracecall.Run(pid, 0, opts.Options, func(c *ptracecall.Conn) error {
		s := ptraceSession{c, pid, opts.callTimeout}
		name, err := s.cString("epoch")
		if err != nil {
			return err
		}
		one, err := s.word(1)
		if err != nil {
			return err
		}
		rc, err := s.call(fns["mallctl"], name, 0, 0, one, 8)
		if err != nil {
			return err
		}
		fmt.Fprintf(&log, "memdiag: epoch %d\n", int32(rc))
		for _, v := range jemallocValues {
			if err := jemallocValue(s, fns["mallctl"], v.name, v.size, v.signed, &log); err != nil {
				return err
			}
		}
		return nil
	})
	return log.String(), err
}

// jemallocValue reads one mallctl value and writes its log line.
func jemallocValue(s ptraceSession, mallctl uint64, name string, size int, signed bool, log *strings.Builder) error {
	np, err := s.cString(name)
	if err != nil {
		return err
	}
	old, err := s.word(0)
	if err != nil {
		return err
	}
	lenp, err := s.word(uint64(size))
	if err != nil {
		return err
	}
	rc, err := s.call(mallctl, np, old, lenp, 0, 0)
	if err != nil {
		return err
	}
	b, err := s.c.Read(old, 8)
	if err != nil {
		return err
	}
	v := binary.LittleEndian.Uint64(b)
	switch {
	case signed:
		fmt.Fprintf(log, "memdiag: je %s %d %d\n", name, int32(rc), int64(v))
	case size == 4:
		fmt.Fprintf(log, "memdiag: je %s %d %d\n", name, int32(rc), uint32(v))
	case size == 1:
		fmt.Fprintf(log, "memdiag: je %s %d %d\n", name, int32(rc), uint8(v))
	default:
		fmt.Fprintf(log, "memdiag: je %s %d %d\n", name, int32(rc), v)
	}
	return nil
}

// tcmallocByPtrace has MallocExtension_GetStats write into a buffer it
// maps in the process (its own anonymous memory, not the heap measured),
// reads the text and unmaps the buffer.
func tcmallocByPtrace(pid int, d Detection, opts ptraceOptions) ([]byte, error) {
	tc, err := lookup(pid, soName(d.Library), "MallocExtension_GetStats")
	if err != nil {
		return nil, err
	}
	libc, err := lookup(pid, "libc.so", "mmap", "munmap")
	if err != nil {
		return nil, err
	}
	var text []byte
	err = ptracecall.Run(pid, 0, opts.Options, func(c *ptracecall.Conn) error {
		s := ptraceSession{c, pid, opts.callTimeout}
		const protRW, mapPrivateAnon = 3, 0x22
		buf, err := s.call(libc["mmap"], 0, bufferBytes, protRW, mapPrivateAnon, ^uint64(0), 0)
		if err != nil {
			return err
		}
		if int64(buf) < 0 && int64(buf) > -4096 {
			return fmt.Errorf("process %d could not map a %d KiB buffer (errno %d)", pid, bufferBytes>>10, -int64(buf))
		}
		_, callErr := s.call(tc["MallocExtension_GetStats"], buf, bufferBytes-1)
		if callErr == nil {
			text, callErr = c.Read(buf, bufferBytes)
		}
		if _, err := s.call(libc["munmap"], buf, bufferBytes); err != nil && callErr == nil {
			callErr = err
		}
		return callErr
	})
	if err != nil {
		return nil, err
	}
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	return text, nil
}

// trimByPtrace makes the allocator's trim call in one thread of the
// process; the result is what the call returned.
func trimByPtrace(pid int, d Detection, opts ptraceOptions) (rc int, err error) {
	switch d.Kind {
	case Glibc:
		fns, err := lookup(pid, "libc.so", "malloc_trim")
		if err != nil {
			return 0, err
		}
		return callOne(pid, opts, fns["malloc_trim"], 0)
	case Tcmalloc:
		fns, err := lookup(pid, soName(d.Library), "MallocExtension_ReleaseFreeMemory")
		if err != nil {
			return 0, err
		}
		_, err = callOne(pid, opts, fns["MallocExtension_ReleaseFreeMemory"])
		return 0, err
	case Jemalloc:
		fns, err := lookup(pid, soName(d.Library), "mallctl")
		if err != nil {
			return 0, err
		}
		err = ptracecall.Run(pid, 0, opts.Options, func(c *ptracecall.Conn) error {
			s := ptraceSession{c, pid, opts.callTimeout}
			name, err := s.cString("arena.4096.purge")
			if err != nil {
				return err
			}
			ret, err := s.call(fns["mallctl"], name, 0, 0, 0, 0)
			rc = int(int32(ret))
			return err
		})
		return rc, err
	}
	return 0, fmt.Errorf("process %d: %w: its allocator is %s", pid, ErrUnsupported, orUnknown(string(d.Kind)))
}
