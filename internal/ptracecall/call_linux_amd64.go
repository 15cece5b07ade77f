//go:build linux && amd64

package ptracecall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
)

// Layout of the scratch stack, System V x86-64 ABI.
const (
	// redZone is the 128 bytes below rsp a leaf function may use without
	// moving rsp: the thread may hold live data there.
	redZone = 128
	// minStack is the room a called function is guaranteed below the
	// scratch stack in a mapping that cannot grow (a pthread stack);
	// malloc_trim, mallctl and GetStats use a few KiB.
	minStack = 32 << 10
	// maxArgs is how many integer arguments go in registers.
	maxArgs = 6
	// trapAddr is the return address of every call: the function's ret
	// jumps there and faults on the instruction fetch. Page 0 lies below
	// vm.mmap_min_addr on every distribution; Run checks that nothing is
	// mapped there anyway.
	trapAddr = 0
	// errRestartBlock is -ERESTART_RESTARTBLOCK: the system call resumes
	// through restart_syscall and the thread's restart_block.
	errRestartBlock = -516
	// errEINTR is -EINTR.
	errEINTR = -4
	// eflags bits cleared for the call: the ABI requires the direction
	// flag clear at a call, and a trace flag left set would single-step.
	flagTF = 1 << 8
	flagDF = 1 << 10
	// userCS is the code segment of 64-bit user mode; 32-bit (compat)
	// threads have 0x23.
	userCS = 0x33
	// defaultStopTimeout is Options.StopTimeout's zero value.
	defaultStopTimeout = time.Second
	// stuckPoll is how often a thread that would not stop is checked
	// again after Run gave up on it.
	stuckPoll = 10 * time.Millisecond
)

// Options say how Run borrows a thread.
type Options struct {
	// StopTimeout bounds the wait for the thread to stop after
	// PTRACE_INTERRUPT, and for an abandoned call's thread to stop again.
	// A thread in uninterruptible sleep (state D) stops only when it
	// wakes. Zero means one second.
	StopTimeout time.Duration
	// ErrnoLocation, when set, is the address of __errno_location in the
	// target's libc (LookupFunc(pid, "libc.so.6", "__errno_location")):
	// before the first call it is called to find the thread's errno, and
	// at the end the errno the thread had is written back. Without it a
	// function that sets errno leaves its value to a thread that may have
	// been stopped between a failing system call and its errno check.
	ErrnoLocation uint64
	// StartTime, when set, is the start time (field 22 of
	// /proc/PID/stat, as proc.StartTime reads it) of the process
	// the caller resolved addresses in: a process that has it no longer
	// — the pid was reused — is refused once its thread is stopped (and
	// so can no longer change).
	StartTime string
	// Identity, when set, is the process as the caller found it when it
	// resolved addresses (proc.ReadIdentity): a process that has
	// since exec'd another program (a setuid one, say: the start time
	// stays) or been replaced is refused once its thread is stopped,
	// before any call.
	Identity *proc.Identity
	// Patient keeps waiting for a call that runs past its timeout while
	// the thread, interrupted to look, is running the function rather
	// than parked in a futex wait: abandoning an allocator's trim in the
	// middle of its work would leave the arena lock it holds held, and
	// the process's next malloc would wait for ever. Each further wait is
	// as long as the timeout, and Notify is told of it.
	Patient bool
	// Notify, when set, is told when Run waits longer than asked: a call
	// still running past its timeout (Patient), or a thread that would
	// not stop after an abandoned call, which Run waits for so that it is
	// restored before Run returns.
	Notify func(msg string)
}

// Conn is a thread borrowed by Run. It is valid only during Run's
// callback and only on the goroutine Run called it on: ptrace accepts
// requests only from the OS thread that attached.
type Conn struct {
	pid, tid int
	osTID    int // the tracer's OS thread
	saved    unix.PtraceRegs
	xstate   []byte
	// callXState is xstate with the x87 register stack emptied, written
	// before each call when the thread's is not empty; nil otherwise.
	callXState []byte
	stack      stackRoom
	// code are the executable mappings when the thread stopped: a call
	// must start in one (other threads may map and unmap meanwhile: a
	// sanity check, not a guarantee).
	code [][2]uint64
	// next is the lowest scratch-stack address handed out so far.
	next uint64
	// modified is set once a register was written: from then on the
	// saved state must be restored before detaching.
	modified bool
	// atSignal: the thread is in a signal-delivery-stop, where detaching
	// can hand a held signal back with its siginfo.
	atSignal bool
	held     []heldSignal
	// abandoned is why a call was given up, after which no call is made.
	abandoned error
	// stuck: the thread would not stop after an abandoned call; Run
	// keeps waiting for it after returning.
	stuck bool
	// stuckTimeout bounds the wait for an abandoned call's thread to stop.
	stuckTimeout time.Duration
	// gone: the thread exited; there is nothing to restore or detach.
	gone bool
	// execed: the process exec'd during the call (PTRACE_EVENT_EXEC): the
	// saved state belongs to a program that no longer exists, and the new
	// one may run with other credentials (a setuid binary), so nothing is
	// written into it; it is only detached.
	execed bool
	// identity is the process once its thread stopped, checked again
	// before the saved state is written back.
	identity proc.Identity
	// patient and notify are Options.Patient and Options.Notify.
	patient bool
	notify  func(string)
	// errnoFn is Options.ErrnoLocation; errnoAddr and errnoSaved are the
	// thread's errno and its value, once read (errnoAddr != 0).
	errnoFn    uint64
	errnoAddr  uint64
	errnoSaved []byte
	// restartLost: a system call of the function was interrupted with
	// -ERESTART_RESTARTBLOCK, which rewrote the thread's restart_block;
	// the thread's own such system call can then not be restarted.
	restartLost bool
	// skipXStateRestore is for a test that proves the canary detects a
	// restore of the general registers alone.
	skipXStateRestore bool
	// dropSyscall is for a test that proves the canary detects a restore
	// that loses orig_rax (the interrupted system call).
	dropSyscall bool
}

// heldSignal is a signal that arrived for the thread while it was
// borrowed, held back to be delivered once it is restored.
type heldSignal struct {
	sig  unix.Signal
	info siginfo
}

// Run stops thread tid of process pid, saves its registers and extended
// state, calls fn with a Conn on which functions can be called in the
// thread, then restores the thread exactly and detaches. Only that thread
// stops; the process's others keep running. The error joins fn's with
// any of the restore.
//
// tid 0 lets pickThread choose.
//
// fn runs on a goroutine locked to the OS thread that attached; it must
// call the Conn's methods from that goroutine, not from others it starts.
func Run(pid, tid int, opts Options, fn func(*Conn) error) error {
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = defaultStopTimeout
	}
	if tid == 0 {
		var err error
		if tid, err = pickThread(pid); err != nil {
			return err
		}
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the OS thread ends with this goroutine, and the
		// kernel then detaches whatever it still traces.
		runtime.LockOSThread()
		c := &Conn{pid: pid, tid: tid, osTID: unix.Gettid(), patient: opts.Patient, notify: opts.Notify}
		err := c.run(opts, fn)
		if c.stuck {
			// Returning now would let memdiag exit with the thread still
			// running the call: the kernel would detach it with the
			// call's registers and it would return to trapAddr and die.
			c.tell(fmt.Sprintf("thread %d of process %d did not stop when its call was interrupted; waiting for it to stop to restore it", tid, pid))
			err = errors.Join(err, c.waitUnstuck())
		}
		done <- err
	}()
	return <-done
}

func (c *Conn) tell(msg string) {
	if c.notify != nil {
		c.notify(msg)
	}
}

// Call stops thread tid of process pid, calls the function at address fn
// in it with up to six integer arguments, and returns the function's rax
// once it returned; the thread is then restored and detached. timeout
// bounds the stop and the call; tid 0 lets pickThread choose. See Run and
// the package documentation for what is guaranteed.
func Call(pid, tid int, fn uint64, args []uint64, timeout time.Duration) (uint64, error) {
	var ret uint64
	err := Run(pid, tid, Options{StopTimeout: timeout}, func(c *Conn) error {
		var err error
		ret, err = c.Call(fn, args, timeout)
		return err
	})
	return ret, err
}

func (c *Conn) run(opts Options, fn func(*Conn) error) (err error) {
	if err := checkTarget(c.pid, c.tid); err != nil {
		return err
	}
	start, err := processStart(c.pid)
	if err != nil {
		return err
	}
	if opts.StartTime != "" && opts.StartTime != start {
		return fmt.Errorf("%s: %w: pid %d now belongs to a process started at %s, not %s", c.where(), ErrNoProcess, c.pid, start, opts.StartTime)
	}
	if err := c.attach(opts.StopTimeout); err != nil {
		return err
	}
	defer func() {
		if c.stuck {
			return // still running the call: Run restores it when it stops
		}
		err = errors.Join(err, c.restoreAndDetach())
	}()
	// Checked again now that the thread is stopped: the process cannot
	// exit and its pid cannot be reused while it is traced.
	if again, err := processStart(c.pid); err != nil || again != start {
		return errors.Join(fmt.Errorf("%s: %w: the process changed while being stopped (start time %s, then %s)", c.where(), ErrNoProcess, start, again), err)
	}
	// Read once stopped, so that it is the program whose registers are
	// saved: the write-back is checked against it (sameProgram).
	now, err := proc.FS{}.Identity(c.pid)
	if err != nil {
		return fmt.Errorf("%s: %w: %v", c.where(), ErrNoProcess, err)
	}
	if was := opts.Identity; was != nil {
		if how := was.Changed(c.pid, now); how != "" {
			return fmt.Errorf("%s: %w: %s since its functions were looked up: no call is made", c.where(), ErrNoProcess, how)
		}
	}
	c.identity = now
	if err := c.save(); err != nil {
		return err
	}
	c.stuckTimeout = opts.StopTimeout
	c.errnoFn = opts.ErrnoLocation
	return fn(c)
}

func (c *Conn) where() string { return fmt.Sprintf("process %d thread %d", c.pid, c.tid) }

// attach seizes the thread and waits for the stop PTRACE_INTERRUPT asks
// for. Signals that arrive first are held. On error the thread is
// detached (or, if it never stopped, left to the kernel's detach when the
// tracer's OS thread exits — nothing was written).
func (c *Conn) attach(timeout time.Duration) error {
	if err := seize(c.tid); err != nil {
		switch {
		case errors.Is(err, unix.ESRCH):
			return fmt.Errorf("%s: %w", c.where(), ErrNoProcess)
		case errors.Is(err, unix.EPERM):
			return fmt.Errorf("%s: %w%s: PTRACE_SEIZE: %w", c.where(), ErrPermission, tracerNote(c.pid), err)
		}
		return fmt.Errorf("%s: PTRACE_SEIZE: %w", c.where(), err)
	}
	if err := unix.PtraceInterrupt(c.tid); err != nil {
		c.detachQuietly()
		return fmt.Errorf("%s: PTRACE_INTERRUPT: %w", c.where(), err)
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.wait(deadline)
		if err != nil {
			if errors.Is(err, ErrTimeout) {
				// Still running: PTRACE_DETACH would fail. Nothing was
				// written; the kernel detaches it when this OS thread
				// exits, cancelling the interrupt.
				return errors.Join(fmt.Errorf("%s: waiting for it to stop: %w (uninterruptible sleep, state D?)", c.where(), err), c.resend(c.held))
			}
			return err
		}
		switch {
		case st.interrupt():
			return nil
		case st.exec():
			c.execed = true
			return errors.Join(fmt.Errorf("%s: %w as it was being stopped; nothing was written", c.where(), ErrExeced), c.detach())
		case st.groupStop():
			return errors.Join(fmt.Errorf("%s: %w (by %v); it is left stopped", c.where(), ErrStopped, st.sig), c.detach())
		default:
			// A signal was being delivered as the interrupt came: hold
			// it; the interrupt's own stop follows on resuming.
			if err := c.hold(st.sig); err != nil {
				return errors.Join(err, c.detach())
			}
			if err := unix.PtraceCont(c.tid, 0); err != nil {
				return fmt.Errorf("%s: PTRACE_CONT: %w", c.where(), err)
			}
		}
	}
}

// save reads the registers and extended state, and checks that the
// thread can be borrowed.
func (c *Conn) save() error {
	if err := unix.PtraceGetRegs(c.tid, &c.saved); err != nil {
		return fmt.Errorf("%s: PTRACE_GETREGS: %w", c.where(), err)
	}
	if c.saved.Cs != userCS {
		return fmt.Errorf("%s: %w: it runs 32-bit code (cs %#x)", c.where(), ErrUnsupported, c.saved.Cs)
	}
	if shadowStackEnabled(c.tid) {
		return fmt.Errorf("%s: %w: it has a user shadow stack (CET), which this package does not extend", c.where(), ErrUnsupported)
	}
	if err := checkRseq(c.tid, c.saved.Rip); err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	if err := checkSigmask(c.tid); err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	x, err := readXState(c.tid)
	if err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	c.xstate = x
	c.callXState = emptyX87(x)
	maps, err := readMaps(c.pid)
	if err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	if c.stack, err = findStack(maps, c.saved.Rsp); err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	c.code = codeRanges(maps)
	c.next = c.saved.Rsp - redZone
	return nil
}

// TID is the borrowed thread.
func (c *Conn) TID() int { return c.tid }

// Regs returns the thread's registers as saved when it stopped (x86-64
// Linux only, as the type is).
func (c *Conn) Regs() unix.PtraceRegs { return c.saved }

// XStateSize is the size of the thread's extended state (XSAVE area) as
// the kernel reported it.
func (c *Conn) XStateSize() int { return len(c.xstate) }

// InSyscall reports whether the thread was stopped in a system call, and
// which (orig_rax); the call restarts when the thread resumes.
func (c *Conn) InSyscall() (nr int64, ok bool) {
	nr = int64(c.saved.Orig_rax)
	return nr, nr >= 0
}

// Push copies data onto the scratch stack, 16-byte aligned, and returns
// its address in the target: room for a function's out-parameters or
// strings. It stays valid for the rest of Run; calls made afterwards use
// the stack below it.
func (c *Conn) Push(data []byte) (uint64, error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	size := (uint64(len(data)) + 15) &^ 15
	if size > c.next-c.stack.low {
		return 0, fmt.Errorf("%s: pushing %d bytes: %w", c.where(), len(data), ErrNoStack)
	}
	addr := (c.next - size) &^ 15
	if err := c.poke(addr, data); err != nil {
		return 0, err
	}
	c.next = addr
	return addr, nil
}

// Read reads n bytes of the target's memory at addr (at most 1 MiB): an
// out-parameter a call filled in.
func (c *Conn) Read(addr uint64, n int) ([]byte, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if n < 0 || n > 1<<20 {
		return nil, fmt.Errorf("%s: reading %d bytes: out of bounds", c.where(), n)
	}
	buf := make([]byte, n)
	got, err := unix.PtracePeekData(c.tid, uintptr(addr), buf)
	if err != nil || got != n {
		return nil, fmt.Errorf("%s: reading %d bytes at %#x: got %d: %w", c.where(), n, addr, got, err)
	}
	return buf, nil
}

// usable refuses a Conn used off its OS thread or after an abandoned
// call.
func (c *Conn) usable() error {
	if unix.Gettid() != c.osTID {
		return fmt.Errorf("%s: Conn used from another OS thread than the tracer's (call it only from Run's callback goroutine)", c.where())
	}
	if c.gone {
		return fmt.Errorf("%s: %w", c.where(), ErrExited)
	}
	if c.abandoned != nil {
		return fmt.Errorf("%s: %w: %w", c.where(), ErrAbandoned, c.abandoned)
	}
	return nil
}

func (c *Conn) poke(addr uint64, data []byte) error {
	n, err := unix.PtracePokeData(c.tid, uintptr(addr), data)
	if err != nil || n != len(data) {
		return fmt.Errorf("%s: writing %d bytes at %#x: wrote %d: %w", c.where(), len(data), addr, n, err)
	}
	return nil
}

// Call calls the function at address fn in the thread with args (at most
// six, in rdi, rsi, rdx, rcx, r8, r9) and returns its rax — whole: for a
// function returning int, only the low 32 bits are its result
// (int32(ret)), the ABI leaving the rest undefined. timeout bounds
// the call: a function still running then is interrupted and abandoned
// (ErrTimeout), as is one that faults (ErrFault); later calls are refused.
func (c *Conn) Call(fn uint64, args []uint64, timeout time.Duration) (uint64, error) {
	if err := c.usable(); err != nil {
		return 0, err
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("%s: timeout %v: a call needs a positive timeout", c.where(), timeout)
	}
	if len(args) > maxArgs {
		return 0, fmt.Errorf("%s: %d arguments: at most %d integer arguments are passed", c.where(), len(args), maxArgs)
	}
	if !c.isCode(fn) {
		return 0, fmt.Errorf("%s: %w: %#x", c.where(), ErrNotCode, fn)
	}
	if err := c.saveErrno(timeout); err != nil {
		return 0, err
	}
	return c.call(fn, args, timeout)
}

func (c *Conn) call(fn uint64, args []uint64, timeout time.Duration) (uint64, error) {
	sp, err := c.start(fn, args)
	if err != nil {
		return 0, err
	}
	return c.awaitReturn(fn, sp, timeout)
}

// saveErrno finds and reads the thread's errno before the first call,
// when asked to (Options.ErrnoLocation).
func (c *Conn) saveErrno(timeout time.Duration) error {
	if c.errnoFn == 0 || c.errnoAddr != 0 {
		return nil
	}
	if !c.isCode(c.errnoFn) {
		return fmt.Errorf("%s: __errno_location: %w: %#x", c.where(), ErrNotCode, c.errnoFn)
	}
	addr, err := c.call(c.errnoFn, nil, timeout)
	if err != nil {
		return fmt.Errorf("__errno_location: %w", err)
	}
	v, err := c.Read(addr, 4)
	if err != nil {
		return fmt.Errorf("reading errno: %w", err)
	}
	c.errnoAddr, c.errnoSaved = addr, v
	return nil
}

// start sets the thread up to enter fn on the scratch stack and resumes
// it; it returns the stack pointer at the function's entry.
func (c *Conn) start(fn uint64, args []uint64) (sp uint64, err error) {
	if sp, err = c.scratchSP(); err != nil {
		return 0, err
	}
	var ret [8]byte
	binary.LittleEndian.PutUint64(ret[:], trapAddr)
	if err := c.poke(sp, ret[:]); err != nil {
		return 0, err
	}
	regs := callRegs(c.saved, fn, sp, args)
	c.modified = true
	if err := unix.PtraceSetRegs(c.tid, &regs); err != nil {
		return 0, fmt.Errorf("%s: PTRACE_SETREGS for the call: %w", c.where(), err)
	}
	if c.callXState != nil {
		if err := writeXState(c.tid, c.callXState); err != nil {
			return 0, fmt.Errorf("%s: emptying the x87 stack for the call: %w", c.where(), err)
		}
	}
	if err := unix.PtraceCont(c.tid, 0); err != nil {
		return 0, fmt.Errorf("%s: PTRACE_CONT into the call: %w", c.where(), err)
	}
	c.atSignal = false
	return sp, nil
}

func (c *Conn) isCode(addr uint64) bool {
	for _, r := range c.code {
		if r[0] <= addr && addr < r[1] {
			return true
		}
	}
	return false
}

// scratchSP returns the stack pointer at the function's entry: below
// what Push placed and the red zone, aligned so that rsp+8 is a multiple
// of 16 (the return address just "pushed"), with room for the function.
func (c *Conn) scratchSP() (uint64, error) {
	sp := (c.next &^ 15) - 8
	if sp < c.stack.low || (!c.stack.grows && sp-c.stack.low < minStack) {
		return 0, fmt.Errorf("%s: %w: %d bytes below the scratch stack at %#x in its stack mapping %#x-%#x, %d needed", c.where(), ErrNoStack, sp-min(sp, c.stack.low), sp, c.stack.low, c.stack.high, minStack)
	}
	return sp, nil
}

// callRegs are the saved registers set up to enter fn on the scratch
// stack.
func callRegs(saved unix.PtraceRegs, fn, sp uint64, args []uint64) unix.PtraceRegs {
	r := saved
	r.Rip, r.Rsp = fn, sp
	// -1 tells the kernel the thread is not in a system call: otherwise,
	// resuming from a stop inside one, it would rewind rip by 2 and
	// re-execute "the system call" (-ERESTARTSYS…) at our function.
	r.Orig_rax = ^uint64(0)
	// al holds the number of vector registers a variadic function gets.
	r.Rax = 0
	r.Eflags &^= flagTF | flagDF
	dst := []*uint64{&r.Rdi, &r.Rsi, &r.Rdx, &r.Rcx, &r.R8, &r.R9}
	for i, a := range args {
		*dst[i] = a
	}
	return r
}

// awaitReturn waits for the call to come back to trapAddr, holding the
// signals that arrive meanwhile, until timeout.
func (c *Conn) awaitReturn(fn, sp uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	interrupted := false
	var waited time.Duration // past the first timeout, when patient
	toldSlow := false
	for {
		st, err := c.wait(deadline)
		if errors.Is(err, ErrTimeout) && !interrupted {
			// Take the thread back; the stop's kind is decided below.
			if err := unix.PtraceInterrupt(c.tid); err != nil {
				return 0, fmt.Errorf("%s: PTRACE_INTERRUPT after %v: %w", c.where(), timeout, err)
			}
			interrupted = true
			deadline = time.Now().Add(c.stuckTimeout)
			continue
		}
		if errors.Is(err, ErrTimeout) && c.patient {
			// Slow to stop (a throttled cgroup): a patient call is looked
			// at once the thread stops, never restored blind — mid-trim
			// it holds the arena's lock.
			if !toldSlow {
				c.tell(fmt.Sprintf("thread %d of process %d has not stopped yet to be looked at; waiting (only that thread is paused)", c.tid, c.pid))
				toldSlow = true
			}
			deadline = time.Now().Add(c.stuckTimeout)
			continue
		}
		if errors.Is(err, ErrTimeout) {
			c.stuck = true
			c.abandoned = fmt.Errorf("the call of %#x ran for %v and the thread did not stop when interrupted", fn, timeout)
			return 0, fmt.Errorf("%s: %w: %w; it was restored once it stopped, where the call was: any lock the call held stays held", c.where(), ErrTimeout, c.abandoned)
		}
		if err != nil {
			return 0, err
		}
		if err := c.noteRestartBlock(); err != nil {
			return 0, err
		}
		switch {
		case st.exec():
			c.execed = true
			c.abandoned = fmt.Errorf("%w during the call of %#x", ErrExeced, fn)
			return 0, fmt.Errorf("%s: %w: nothing is written into the new program; it is only detached", c.where(), c.abandoned)
		case st.interrupt() && interrupted && c.patient && !c.inFutexWait():
			// Running the function, not parked on a lock: it ends.
			waited += timeout
			c.tell(fmt.Sprintf("the call in thread %d of process %d is still running after %v; waiting for it to return (only that thread is paused)", c.tid, c.pid, waited))
			interrupted = false
			deadline = time.Now().Add(timeout)
		case st.interrupt() && interrupted:
			c.abandoned = fmt.Errorf("the call of %#x did not return within %v", fn, waited+timeout)
			return 0, fmt.Errorf("%s: %w: %w (abandoned where it was: any lock it held stays held)", c.where(), ErrTimeout, c.abandoned)
		case st.interrupt(), st.groupStop():
			// A group stop: let the call finish; the thread rejoins the
			// stop when detached.
		case st.sig != 0:
			done, ret, err := c.signalStop(fn, sp, st.sig)
			if done || err != nil {
				return ret, err
			}
		}
		if err := unix.PtraceCont(c.tid, 0); err != nil {
			return 0, fmt.Errorf("%s: PTRACE_CONT during the call: %w", c.where(), err)
		}
	}
}

// noteRestartBlock checks, at a stop during the call, whether the
// function was stopped inside a system call that restarts through
// restart_block (-ERESTART_RESTARTBLOCK: nanosleep, poll, futex with a
// timeout). The kernel just stored that system call's restart there,
// over the thread's own; only stops interrupt system calls, and the
// tracer sees every stop, so this is where it can be seen.
func (c *Conn) noteRestartBlock() error {
	if int64(c.saved.Rax) != errRestartBlock || int64(c.saved.Orig_rax) < 0 || c.restartLost {
		return nil // the thread's own system call does not need it
	}
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); err != nil {
		return fmt.Errorf("%s: PTRACE_GETREGS during the call: %w", c.where(), err)
	}
	c.restartLost = int64(r.Orig_rax) >= 0 && int64(r.Rax) == errRestartBlock
	return nil
}

// signalStop handles a signal-delivery-stop during a call: the return to
// the trap (done, with rax), a fault of the function (an error), or
// another signal (held, the call goes on).
func (c *Conn) signalStop(fn, sp uint64, sig unix.Signal) (done bool, ret uint64, err error) {
	info, err := getSiginfo(c.tid)
	if err != nil {
		return false, 0, fmt.Errorf("%s: %w", c.where(), err)
	}
	if !info.fromKernel() || !syncFault(sig) {
		c.held = append(c.held, heldSignal{sig: sig, info: info})
		return false, 0, nil
	}
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); err != nil {
		return false, 0, fmt.Errorf("%s: PTRACE_GETREGS after the call: %w", c.where(), err)
	}
	c.atSignal = true
	// Ours only if all three agree: the fault is the fetch at trapAddr
	// (rip), reached by a ret that popped our return address (rsp one
	// word above it). A call through a null pointer inside the function
	// also faults at 0, but with rsp below ours.
	if sig == unix.SIGSEGV && info.addr() == trapAddr && r.Rip == trapAddr && r.Rsp == sp+8 {
		return true, r.Rax, nil
	}
	c.abandoned = fmt.Errorf("the call of %#x raised %v (code %d) at address %#x, rip %#x", fn, sig, info.code(), info.addr(), r.Rip)
	return true, 0, fmt.Errorf("%s: %w: %w; it was not delivered, the thread is restored", c.where(), ErrFault, c.abandoned)
}

// syncFault reports whether sig is one the CPU raises for the
// instruction that runs: raised by the kernel during a call, it is the
// call's.
func syncFault(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGILL, unix.SIGFPE, unix.SIGTRAP, unix.SIGSYS:
		return true
	}
	return false
}

// hold records a signal whose signal-delivery-stop the thread is in.
func (c *Conn) hold(sig unix.Signal) error {
	info, err := getSiginfo(c.tid)
	if err != nil {
		return fmt.Errorf("%s: %w", c.where(), err)
	}
	c.held = append(c.held, heldSignal{sig: sig, info: info})
	return nil
}

// restoreAndDetach puts the saved state back, checks it, and detaches,
// handing held signals back.
func (c *Conn) restoreAndDetach() error {
	if c.gone {
		return nil
	}
	var errs []error
	if c.modified && !c.execed {
		if err := c.ensureStopped(); err != nil || c.gone {
			return err
		}
		if err := c.sameProgram(); err != nil {
			return errors.Join(err, c.detach())
		}
		if c.errnoAddr != 0 {
			errs = append(errs, c.poke(c.errnoAddr, c.errnoSaved))
		}
		errs = append(errs, c.restore())
	}
	errs = append(errs, c.detach())
	return errors.Join(errs...)
}

// sameProgram checks, before the saved state is written back, that the
// process still runs the program it was saved from: one exec'd since
// (unseen by PTRACE_O_TRACEEXEC, as when another thread exec'd) gets
// nothing written into it.
func (c *Conn) sameProgram() error {
	now, err := proc.FS{}.Identity(c.pid)
	if err != nil {
		return fmt.Errorf("%s: %w: %v; nothing is written back", c.where(), ErrNoProcess, err)
	}
	if how := c.identity.Changed(c.pid, now); how != "" {
		c.execed = true
		return fmt.Errorf("%s: %w: %s during the call; nothing is written into it", c.where(), ErrExeced, how)
	}
	return nil
}

// ensureStopped makes sure the thread is in a ptrace-stop before its
// registers are written back: after an unexpected error in the middle of
// a call it may still be running the function, and detaching it then
// would send it to trapAddr. A running thread is interrupted and left to
// waitUnstuck (c.stuck), which restores it once it stops.
func (c *Conn) ensureStopped() error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); !errors.Is(err, unix.ESRCH) {
		return nil // stopped: ESRCH is the only answer for a running tracee
	}
	if err := unix.PtraceInterrupt(c.tid); err != nil {
		c.gone = errors.Is(err, unix.ESRCH)
		return fmt.Errorf("%s: PTRACE_INTERRUPT to restore it: %w", c.where(), err)
	}
	c.stuck = true
	return fmt.Errorf("%s: the thread was still running the call; it is restored and detached as soon as it stops", c.where())
}

func (c *Conn) restore() error {
	want := c.saved
	var lost error
	if c.restartLost {
		// restart_syscall would now run the function's system call, with
		// its arguments. Ending the thread's with EINTR is what a signal
		// handler would have done; the remaining time of a relative sleep
		// was written to its rem argument when it was stopped.
		eintr := int64(errEINTR)
		want.Rax = uint64(eintr)
		lost = fmt.Errorf("%s: %w: system call %d was stopped in a way only restart_block could continue, and the call's own interrupted system call overwrote it", c.where(), ErrSyscallInterrupted, int64(want.Orig_rax))
	}
	regs := want
	if c.dropSyscall {
		regs.Orig_rax = ^uint64(0)
	}
	if err := unix.PtraceSetRegs(c.tid, &regs); err != nil {
		return fmt.Errorf("%s: %w: PTRACE_SETREGS: %w", c.where(), ErrRestore, err)
	}
	if !c.skipXStateRestore {
		if err := writeXState(c.tid, c.xstate); err != nil {
			return fmt.Errorf("%s: %w: %w", c.where(), ErrRestore, err)
		}
	}
	return errors.Join(lost, c.verify(want))
}

// verify reads the registers back: what the thread resumes with must be
// want, what it stopped with (but for an EINTR restore forced).
func (c *Conn) verify(want unix.PtraceRegs) error {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); err != nil {
		return fmt.Errorf("%s: %w: reading back: %w", c.where(), ErrRestore, err)
	}
	if r != want {
		return fmt.Errorf("%s: %w: general registers read back %+v, saved %+v", c.where(), ErrRestore, r, c.saved)
	}
	if c.skipXStateRestore {
		return nil
	}
	x, err := readXState(c.tid)
	if err != nil {
		return fmt.Errorf("%s: %w: reading back: %w", c.where(), ErrRestore, err)
	}
	if at := firstDiff(x, c.xstate); at >= 0 {
		return fmt.Errorf("%s: %w: extended state read back differs at byte %d of %d", c.where(), ErrRestore, at, len(c.xstate))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// detach resumes the thread. In a signal-delivery-stop, the first held
// signal goes back with its own siginfo, as if it arrived now; any other
// is sent again with tgkill (its siginfo then names memdiag as sender).
func (c *Conn) detach() error {
	rest := c.held
	sig := 0
	if c.atSignal && len(rest) > 0 {
		if err := setSiginfo(c.tid, &rest[0].info); err == nil {
			sig, rest = int(rest[0].sig), rest[1:]
		}
	}
	var err error
	if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(c.tid), 0, uintptr(sig), 0, 0); e != 0 {
		err = fmt.Errorf("%s: PTRACE_DETACH: %w", c.where(), e)
	}
	return errors.Join(err, c.resend(rest))
}

// resend sends held signals to the thread again with tgkill.
func (c *Conn) resend(held []heldSignal) error {
	var errs []error
	for _, h := range held {
		if err := unix.Tgkill(c.pid, c.tid, h.sig); err != nil {
			errs = append(errs, fmt.Errorf("%s: re-sending %v held during the call: %w", c.where(), h.sig, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Conn) detachQuietly() {
	_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(c.tid), 0, 0, 0, 0)
}

// waitUnstuck waits, without a bound, for a thread that would not stop
// after an abandoned call, then restores and detaches it: letting it go
// with the call's registers would send it to trapAddr.
func (c *Conn) waitUnstuck() error {
	for {
		st, err := c.wait(time.Now())
		if errors.Is(err, ErrTimeout) {
			time.Sleep(stuckPoll)
			continue
		}
		if err != nil {
			return err
		}
		if st.exec() {
			c.execed = true
		} else if st.sig != 0 && !st.interrupt() && !st.groupStop() {
			c.atSignal = true
			if info, err := getSiginfo(c.tid); err == nil && (!info.fromKernel() || !syncFault(st.sig)) {
				c.held = append(c.held, heldSignal{sig: st.sig, info: info})
			}
		}
		c.stuck = false
		return c.restoreAndDetach()
	}
}
