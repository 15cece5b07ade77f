//go:build linux && amd64

package ptracecall

import (
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stopStatus is one ptrace stop reported by wait4.
type stopStatus struct {
	sig   unix.Signal // WSTOPSIG
	event int         // the PTRACE_EVENT_* in status>>16, 0 for a signal-delivery-stop
}

// interrupt reports the stop PTRACE_INTERRUPT asks for.
func (s stopStatus) interrupt() bool {
	return s.event == unix.PTRACE_EVENT_STOP && s.sig == unix.SIGTRAP
}

// groupStop reports a job-control stop of the process (SIGSTOP, SIGTSTP,
// SIGTTIN, SIGTTOU), which a seized thread reports as a
// PTRACE_EVENT_STOP with the stopping signal.
func (s stopStatus) groupStop() bool {
	return s.event == unix.PTRACE_EVENT_STOP && s.sig != unix.SIGTRAP
}

// exec reports the stop PTRACE_O_TRACEEXEC asks for: the process has
// just exec'd another program.
func (s stopStatus) exec() bool {
	return s.event == unix.PTRACE_EVENT_EXEC
}

// seize attaches to the thread without stopping it, asking for a stop
// at an exec: a program exec'd during a call, perhaps a setuid one, must
// get none of the old program's registers written into it.
func seize(tid int) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SEIZE, uintptr(tid), 0, unix.PTRACE_O_TRACEEXEC, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// inFutexWait reports whether the thread, stopped, is in a futex system
// call: a called function parked on a lock, not running.
func (c *Conn) inFutexWait() bool {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.tid, &r); err != nil {
		return false
	}
	return r.Orig_rax == unix.SYS_FUTEX || r.Orig_rax == unix.SYS_FUTEX_WAITV
}

// waitPoll bounds the pause between WNOHANG polls.
const waitPoll = time.Millisecond

// wait waits until deadline for the thread's next stop. An exit is
// ErrExited (and marks the Conn gone); a deadline passed is ErrTimeout.
func (c *Conn) wait(deadline time.Time) (stopStatus, error) {
	for pause := 20 * time.Microsecond; ; pause = min(2*pause, waitPoll) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(c.tid, &ws, unix.WNOHANG|unix.WALL, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ECHILD):
			c.gone = true
			return stopStatus{}, fmt.Errorf("%s: %w (no longer traced: ECHILD)", c.where(), ErrExited)
		case err != nil:
			return stopStatus{}, fmt.Errorf("%s: wait4: %w", c.where(), err)
		case pid == c.tid && (ws.Exited() || ws.Signaled()):
			c.gone = true
			return stopStatus{}, fmt.Errorf("%s: %w (%s)", c.where(), ErrExited, describeExit(ws))
		case pid == c.tid && ws.Stopped():
			return stopStatus{sig: ws.StopSignal(), event: int(ws) >> 16}, nil
		}
		if !time.Now().Before(deadline) {
			return stopStatus{}, ErrTimeout
		}
		time.Sleep(pause)
	}
}

func describeExit(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return fmt.Sprintf("killed by %v", ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}

// siginfo is the kernel's siginfo_t (128 bytes on x86-64).
type siginfo [128]byte

func (s *siginfo) code() int32 { return int32(nativeUint32(s[8:])) }

// addr is si_addr, meaningful for SIGSEGV, SIGBUS, SIGILL, SIGFPE and
// SIGTRAP raised by a fault.
func (s *siginfo) addr() uint64 { return nativeUint64(s[16:]) }

// fromKernel reports a signal the kernel raised (si_code > 0) rather
// than one a process sent with kill, tgkill or sigqueue (si_code ≤ 0).
func (s *siginfo) fromKernel() bool { return s.code() > 0 }

func nativeUint32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func nativeUint64(b []byte) uint64 {
	return uint64(nativeUint32(b)) | uint64(nativeUint32(b[4:]))<<32
}

func getSiginfo(tid int) (siginfo, error) {
	var info siginfo
	if err := ptraceData(unix.PTRACE_GETSIGINFO, tid, 0, unsafe.Pointer(&info)); err != nil {
		return info, fmt.Errorf("PTRACE_GETSIGINFO: %w", err)
	}
	return info, nil
}

func setSiginfo(tid int, info *siginfo) error {
	if err := ptraceData(unix.PTRACE_SETSIGINFO, tid, 0, unsafe.Pointer(info)); err != nil {
		return fmt.Errorf("PTRACE_SETSIGINFO: %w", err)
	}
	return nil
}

// ptraceData is ptrace(req, tid, addr, data) with data a pointer.
func ptraceData(req, tid int, addr uintptr, data unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, uintptr(data), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Regsets of PTRACE_GETREGSET (include/uapi/linux/elf.h).
const (
	ntX86XState = 0x202 // the XSAVE area, standard (non-compacted) format
	ntX86Shstk  = 0x204 // the user shadow stack pointer, when CET is on
	// xstateFirst is the first buffer tried: the legacy area and header
	// (576 bytes) plus AVX-512 fit; AMX tiles (11 KiB) need a doubling.
	xstateFirst = 4 << 10
	// xstateMax bounds the growth: far above any XSAVE area a CPU has.
	xstateMax = 1 << 20
	// xstateMin is the legacy area (512) plus the XSAVE header (64).
	xstateMin = 576
)

// readXState reads the thread's XSAVE area at the size the kernel
// reports. The kernel copies at most the iovec's length and sets it to
// what it copied, so a length it did not fill means nothing was cut off;
// the buffer grows until then. No CPUID, no constant: the size is the
// kernel's (fpu_user_cfg.max_size), which PTRACE_SETREGSET demands back
// exactly — any other length is EFAULT, gdb 13's "Bad address".
func readXState(tid int) ([]byte, error) { return readXStateFrom(tid, xstateFirst) }

// readXStateFrom is readXState with the first buffer's size.
func readXStateFrom(tid, first int) ([]byte, error) {
	for size := first; size <= xstateMax; size *= 2 {
		buf := make([]byte, size)
		n, err := getRegset(tid, ntX86XState, buf)
		if err != nil {
			return nil, fmt.Errorf("PTRACE_GETREGSET NT_X86_XSTATE (%d bytes): %w", size, err)
		}
		if n < size {
			if n < xstateMin {
				return nil, fmt.Errorf("PTRACE_GETREGSET NT_X86_XSTATE: %d bytes, less than the legacy area and header", n)
			}
			return buf[:n:n], nil
		}
	}
	return nil, fmt.Errorf("PTRACE_GETREGSET NT_X86_XSTATE: larger than %d bytes", xstateMax)
}

func writeXState(tid int, x []byte) error {
	if err := setRegset(tid, ntX86XState, x); err != nil {
		return fmt.Errorf("PTRACE_SETREGSET NT_X86_XSTATE (%d bytes): %w", len(x), err)
	}
	return nil
}

// shadowStackEnabled reports whether the thread has a user shadow stack:
// the kernel answers NT_X86_SHSTK only then (ENODEV otherwise, EINVAL or
// EIO on kernels without it).
func shadowStackEnabled(tid int) bool {
	var ssp [8]byte
	_, err := getRegset(tid, ntX86Shstk, ssp[:])
	return err == nil
}

func getRegset(tid, nt int, buf []byte) (int, error) {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid), uintptr(nt), uintptr(unsafe.Pointer(&iov)), 0, 0)
	runtime.KeepAlive(buf)
	if e != 0 {
		return 0, e
	}
	return int(iov.Len), nil
}

func setRegset(tid, nt int, buf []byte) error {
	iov := unix.Iovec{Base: &buf[0]}
	iov.SetLen(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SETREGSET, uintptr(tid), uintptr(nt), uintptr(unsafe.Pointer(&iov)), 0, 0)
	runtime.KeepAlive(buf)
	if e != 0 {
		return e
	}
	return nil
}

// checkSigmask refuses a thread that blocks SIGSEGV: the trap fault
// would then make the kernel unblock it and reset its handler to SIG_DFL
// (force_sig_info_to_task) before the tracer sees it.
func checkSigmask(tid int) error {
	var mask uint64
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETSIGMASK, uintptr(tid), 8, uintptr(unsafe.Pointer(&mask)), 0, 0)
	if e != 0 {
		return fmt.Errorf("PTRACE_GETSIGMASK: %w", e)
	}
	if mask&sigsegvMask != 0 {
		return fmt.Errorf("%w: the thread blocks SIGSEGV", ErrSignalBlocked)
	}
	return nil
}

// rseqConfigSize is sizeof(struct ptrace_rseq_configuration).
const rseqConfigSize = 24

// checkRseq refuses a thread stopped inside a restartable sequence
// (rseq(2), used by tcmalloc's per-CPU caches). The kernel aborts such a
// sequence when the thread is preempted, but it decides by the rip it
// finds on the way back to user space: resumed into our function it
// would see the thread outside the sequence and clear the descriptor,
// and the thread, restored into the middle of the sequence, would then
// finish it un-aborted after having been away. Kernels before 5.13
// cannot report the registration; the check is then skipped.
func checkRseq(tid int, rip uint64) error {
	var conf [rseqConfigSize]byte
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_RSEQ_CONFIGURATION, uintptr(tid), rseqConfigSize, uintptr(unsafe.Pointer(&conf)), 0, 0)
	if e != 0 {
		return nil
	}
	abi, size := nativeUint64(conf[0:]), nativeUint32(conf[8:])
	if abi == 0 || size < 16 {
		return nil // no rseq area registered
	}
	var ptr [8]byte
	if _, err := unix.PtracePeekData(tid, uintptr(abi+8), ptr[:]); err != nil {
		return fmt.Errorf("%w: reading its rseq area at %#x: %w", ErrBusy, abi, err)
	}
	cs := nativeUint64(ptr[:])
	if cs == 0 {
		return nil
	}
	// struct rseq_cs: version, flags (u32 each), start_ip,
	// post_commit_offset, abort_ip (u64 each).
	var desc [32]byte
	if _, err := unix.PtracePeekData(tid, uintptr(cs), desc[:]); err != nil {
		return fmt.Errorf("%w: reading its rseq critical-section descriptor at %#x: %w", ErrBusy, cs, err)
	}
	start, length := nativeUint64(desc[8:]), nativeUint64(desc[16:])
	if rip >= start && rip-start < length {
		return fmt.Errorf("%w: stopped at %#x inside a restartable sequence (%#x+%d)", ErrBusy, rip, start, length)
	}
	return nil
}

// Offsets in the XSAVE area: the x87 status word and abridged tag byte of
// the legacy (FXSAVE) region, and the header's XSTATE_BV.
const (
	xsaveFSW      = 2
	xsaveFTW      = 4
	xsaveXStateBV = 512
)

// emptyX87 returns a copy of the XSAVE area x with the x87 register stack
// empty (status word and tags cleared; the control word, callee-saved,
// kept), or nil when it is empty already: the component in its initial
// state, or no register tagged in use. The ABI requires an empty stack at
// every call; a thread stopped in the middle of x87 arithmetic has not.
func emptyX87(x []byte) []byte {
	if nativeUint64(x[xsaveXStateBV:])&1 == 0 || x[xsaveFTW] == 0 {
		return nil
	}
	y := append([]byte(nil), x...)
	y[xsaveFSW], y[xsaveFSW+1], y[xsaveFTW] = 0, 0, 0
	return y
}
