package ptracecall

import (
	"errors"
	"fmt"

	"github.com/memdiag/memdiag/internal/proc"
)

// Errors of this package, for errors.Is. Returned errors wrap them with
// the process, thread and what was being done.
var (
	// ErrUnsupported: not x86-64 Linux, or a thread this package cannot
	// borrow safely (32-bit code, a user shadow stack).
	ErrUnsupported = errors.New("calling functions in a process is supported only for 64-bit x86 Linux threads")
	// ErrNoProcess: no such process or thread, or it exited; it is
	// proc.ErrNoProcess too.
	ErrNoProcess = fmt.Errorf("%w or thread", proc.ErrNoProcess)
	// ErrPermission: ptrace refused (not root, yama, another tracer).
	ErrPermission = errors.New("not permitted to trace the process")
	// ErrStopped: the process is stopped (SIGSTOP, job control); it is
	// left so.
	ErrStopped = errors.New("process is stopped")
	// ErrSignalBlocked: the thread blocks SIGSEGV or the process ignores
	// it, so the fault that ends a call would reset its disposition.
	ErrSignalBlocked = errors.New("SIGSEGV is blocked or ignored")
	// ErrNoStack: the memory below the thread's stack pointer cannot take
	// the scratch stack.
	ErrNoStack = errors.New("no room for a scratch stack")
	// ErrNotCode: the function's address is in no executable mapping;
	// nothing was called.
	ErrNotCode = errors.New("no executable code at that address")
	// ErrTimeout: the thread did not stop, or the function did not
	// return, in time. A call that timed out was abandoned (see the
	// package documentation for what that leaves behind).
	ErrTimeout = errors.New("timed out")
	// ErrFault: the function raised a fault (SIGSEGV, SIGBUS, …) and was
	// abandoned; the fault was not delivered.
	ErrFault = errors.New("the called function faulted")
	// ErrExeced: the process exec'd another program during the call or
	// the stop; nothing was written into the new one.
	ErrExeced = errors.New("the process exec'd another program")
	// ErrExited: the thread or process exited during the call.
	ErrExited = errors.New("the thread exited during the call")
	// ErrRestore: the registers read back after the restore differ from
	// those saved. The thread was detached anyway; nothing else could be
	// done for it.
	ErrRestore = errors.New("registers not restored exactly")
	// ErrSyscallInterrupted: the call's own system calls were interrupted
	// in a way that overwrote the thread's restart_block, so the thread's
	// interrupted system call (a relative nanosleep, poll, futex wait)
	// could not be continued: it returns EINTR to the program instead, as
	// after a signal handler. The call's result, if any, is valid.
	ErrSyscallInterrupted = errors.New("the thread's interrupted system call returns EINTR")
	// ErrAbandoned: a call on this Conn was abandoned; no further call is
	// made on a thread in an unknown state.
	ErrAbandoned = errors.New("an earlier call was abandoned")
	// ErrBusy: the thread is where it must not be interrupted by a call
	// (inside a restartable sequence); trying again a moment later may
	// find it elsewhere.
	ErrBusy = errors.New("thread busy, try again")
	// ErrSelfTest: the call path failed on a process of memdiag's own
	// (selfTest); no target should be touched on this host.
	ErrSelfTest = errors.New("calling a function in a process failed on memdiag's own test process")
	// ErrSymbol: a function could not be found, or its address could not
	// be trusted.
	ErrSymbol = errors.New("symbol not found")
)
