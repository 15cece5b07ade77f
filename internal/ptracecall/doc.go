// Package ptracecall calls a function inside a live process without gdb:
// one thread of the process is borrowed with ptrace, the function runs on
// it, and the thread is put back exactly as it was. It exists because
// gdb 13 cannot restore a thread's extended register state on kernels
// whose XSAVE area is larger than the buffer it sends (Intel AMX, kernel
// 6.18: "Couldn't write extended state status: Bad address"), which
// leaves the thread with corrupted vector registers and its interrupted
// system call returning errno 516 or 514 to user space.
//
// # What Run and Call do
//
//  1. Attach to one thread with PTRACE_SEIZE and stop it with
//     PTRACE_INTERRUPT — never SIGSTOP, so no signal is sent and no
//     job-control state changes. The process's other threads keep
//     running: the function may need a lock one of them holds, and were
//     they all stopped it would wait for ever.
//  2. Save the thread's general registers (PTRACE_GETREGS, orig_rax
//     included) and its whole extended state (PTRACE_GETREGSET
//     NT_X86_XSTATE) at the size the kernel reports: the buffer grows
//     until the kernel no longer fills it, so the state of any CPU fits,
//     AMX tiles included, and PTRACE_SETREGSET later gets exactly that
//     size — the kernel refuses any other with EFAULT, gdb 13's fault.
//  3. For each call: write a return address on a scratch stack 16-byte
//     aligned below the thread's stack pointer and its 128-byte red zone,
//     set rip to the function and rdi…r9 to its arguments (and, for a
//     thread stopped in the middle of x87 arithmetic, empty its x87
//     register stack, as the ABI wants at a call), orig_rax to -1
//     (so the kernel does not treat the call as the restart of the system
//     call the thread was stopped in), and resume the thread. The return
//     address is one no mapping covers: the function's final ret faults
//     there, and that SIGSEGV — recognised by its address, rip and stack
//     pointer — is caught by the tracer and never delivered.
//  4. Restore every register exactly, orig_rax, rax and rip included, and
//     the saved extended state, read them back to check, and detach with
//     PTRACE_DETACH. On resume the kernel's own restart logic
//     (arch_do_signal_or_restart) sees the interrupted system call as it
//     was: -ERESTARTSYS and -ERESTARTNOHAND re-execute it,
//     -ERESTART_RESTARTBLOCK continues it through restart_syscall (a
//     sleep ends at its original time), as after any signal stop.
//
// All ptrace requests come from one goroutine locked to its OS thread and
// never unlocked: when it ends, the thread ends, and the kernel detaches
// anything it still traces.
//
// # Using it
//
// SelfTest first, once per host: it runs the whole path on a sleep of
// memdiag's own and refuses (ErrSelfTest) where it fails. Then
// LookupFunc finds the function in the library the target maps (with
// proc.StartTime read at the same time, for Options.StartTime),
// and Call makes one call on a thread PickThread chooses (tid 0). Run
// keeps the thread for several calls, with Conn.Push and Conn.Read for
// out-parameters (mallctl's oldp and oldlenp, GetStats' buffer) and
// Options.ErrnoLocation to give the thread its errno back.
//
// The tests run it on fixtures/programs/canary.c, which waits in a raw
// system call with every general, vector, mask and control register and
// its red zone set to known values, and says afterwards what changed and
// what the system call returned; two controls (a restore without the
// extended state, one that loses orig_rax) show the canary catches what
// gdb 13 breaks.
//
// # Guarantees
//
//   - Every failure after the thread stopped — a timeout, a fault in the
//     function, an error of ours — restores the registers before
//     detaching. A failure before it stopped changes nothing.
//   - Signals that arrive for the borrowed thread while it is borrowed
//     (in signal-delivery-stops) are not delivered into the call: they are
//     held and handed back when the thread is restored. When the thread
//     is detached from a signal-delivery-stop (a call that returned or
//     faulted), the first goes back with its original siginfo through
//     PTRACE_SETSIGINFO and PTRACE_DETACH; the others, and all of them
//     after a timeout or a refusal, are re-sent with tgkill (their
//     sender then reads as memdiag). A group stop (SIGSTOP to the
//     process) during a call lets the call finish; the thread rejoins
//     the stop when detached.
//   - A fault in the function (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP,
//     SIGSYS raised by the kernel) abandons the call, is not delivered,
//     and the thread is restored: the process does not die of our call.
//   - The registers are read back after the restore and compared with
//     those saved, byte for byte for the extended state (ErrRestore if
//     they differ; the thread is detached regardless, nothing better
//     being possible for it).
//   - A thread that does not stop when a timed-out call is interrupted
//     (uninterruptible sleep, a throttled cgroup) is restored and
//     detached when it does stop, and only then does Run return
//     ErrTimeout: returning earlier would let the caller exit with the
//     thread still in the call, to fault at the trap address. Run waits
//     without a bound, telling Options.Notify that it does.
//   - A process that execs during a call (the function, or another
//     thread, ran execve: perhaps of a setuid program, which runs with
//     its owner's credentials under a capable tracer) gets nothing
//     written into it: the exec stop (PTRACE_O_TRACEEXEC) and, before
//     any write-back, its executable's identity say so, and the thread
//     is only detached (ErrNoProcess).
//   - With Options.Patient a call still running past its timeout, and
//     not parked in a futex wait, is waited for rather than abandoned:
//     an allocator's trim holds its arena's lock while it works.
//
// # What it does not guarantee
//
//   - An abandoned call (timeout, or a fault; with Patient, a timeout
//     only where it waits on a futex) is abandoned where it was: a lock
//     it took stays taken, a structure it was changing stays half
//     changed. The process may then deadlock or misbehave later. A
//     timeout is the price of not stopping the other threads: the
//     function may wait for a lock the borrowed thread itself holds (it
//     was stopped inside malloc, say) and never get it. Borrow a thread
//     blocked in a system call (PickThread, or tid 0) to make that
//     unlikely.
//   - A system call the thread was stopped in that continues only
//     through its restart_block (-ERESTART_RESTARTBLOCK: a relative
//     nanosleep, poll, a futex wait with a timeout) cannot be continued
//     if a system call of the function was itself interrupted the same
//     way (the function slept and was abandoned, or a held signal or a
//     group stop came while it slept): the kernel keeps one
//     restart_block per thread, and restarting would run the function's.
//     The thread's system call then returns EINTR, as after a signal
//     handler, and the error says so (ErrSyscallInterrupted). Such an
//     interruption by io_uring task work or the cgroup freezer, which
//     makes no ptrace stop, is not seen.
//   - The function runs as a signal handler would: on a thread stopped
//     at an arbitrary point of its own code. It must be safe to call
//     there — not re-enter state the thread may be in the middle of
//     changing, such as glibc's per-thread tcache if the thread was
//     stopped inside malloc. A thread blocked in a system call is at a
//     well-defined point, but that point may still be inside the
//     allocator (in mmap, brk, madvise or a futex wait); PickThread cannot
//     tell, as that needs an unwind of the thread's stack.
//   - What the function itself does — memory it changes, locks it takes
//     and releases — is the function's. Only registers, the signal state
//     above, the stack below the red zone and, when asked
//     (Options.ErrnoLocation), the thread's errno are the package's to
//     restore.
//   - If memdiag dies (SIGKILL) while a call runs, the kernel detaches the
//     thread with the call's registers: it finishes the function and then
//     faults at the trap address, killing the process with SIGSEGV.
//     Callers should not leave SIGINT/SIGTERM at their default (process
//     exit) during a call.
//   - Stopping a thread at all — with or without a call, gdb or not —
//     makes a few system calls fail with EINTR instead of restarting:
//     epoll_wait, epoll_pwait, sigtimedwait, semop, io_getevents, sockets
//     with SO_RCVTIMEO (signal(7)). A program that does not retry them
//     sees the error. PickThread prefers threads blocked elsewhere.
//   - Refused, the thread untouched: a thread blocking SIGSEGV, or a
//     process ignoring it (ErrSignalBlocked: the kernel would reset
//     SIGSEGV's disposition when the trap fault hits; glibc starts every
//     thread with all signals blocked for a moment); a thread stopped
//     inside a restartable sequence (ErrBusy: resumed elsewhere, the
//     kernel would no longer abort the sequence — tcmalloc's per-CPU
//     caches use them; on kernels before 5.13 this is not checked); a
//     thread whose stack pointer is not on a thread stack with a guard
//     page below it (ErrNoStack: a signal handler's alternate stack, a Go
//     goroutine stack), or has less than 32 KiB left on it (the main
//     thread's [stack] grows, and only needs room for what is written); a thread
//     with a user shadow stack (CET: the return address would also have
//     to go on the shadow stack); 32-bit (compat) code; a process in
//     group stop (ErrStopped, left stopped).
//   - Only integer and pointer arguments (up to six) and an integer
//     result (rax). Memory for out-parameters can be placed on the
//     scratch stack with Conn.Push.
//
// x86-64 Linux only: elsewhere Run and Call return ErrUnsupported.
package ptracecall
