package procmem

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoStop means the process's threads could not all be stopped in time.
var ErrNoStop = errors.New("could not stop the process")

// Pause is what a Freeze cost the process.
type Pause struct {
	// Threads is how many threads were stopped.
	Threads int
	// Duration runs from the first stop requested to the last thread
	// resumed: the longest any thread of the process was held.
	Duration time.Duration
}

// DefaultStopTimeout bounds the wait for a process's threads to stop.
const DefaultStopTimeout = 2 * time.Second

// maxRounds bounds the passes over /proc/PID/task: a thread created while
// the others are being stopped is found on the next pass; a process that
// creates threads faster than they are stopped is refused.
const maxRounds = 64

// Freeze stops every thread of the process, runs fn while they are
// stopped, and resumes them; timeout bounds the wait for the threads to
// stop (a thread in uninterruptible sleep stops only when it wakes); 0
// means DefaultStopTimeout.
//
// Threads are stopped with PTRACE_SEIZE and PTRACE_INTERRUPT, never with
// SIGSTOP, and resumed with PTRACE_DETACH: no register of the process is
// read or written, a system call the stop interrupted restarts as after
// any signal, a signal that arrived meanwhile is delivered on resume, and
// a process that was stopped before stays stopped. All ptrace requests
// come from one OS thread kept for this call alone; should anything be
// left attached, that thread's exit detaches it.
func (p *Process) Freeze(timeout time.Duration, fn func() error) (Pause, error) {
	type outcome struct {
		pause Pause
		err   error
	}
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	done := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and the
		// kernel detaches whatever it still traces.
		runtime.LockOSThread()
		var o outcome
		o.pause, o.err = p.freeze(timeout, fn)
		done <- o
	}()
	o := <-done
	return o.pause, o.err
}

// tracee is one thread memdiag attached to.
type tracee struct {
	tid  int
	gone bool // exited while attached
	// signal arrived while it stopped (a signal-delivery stop): handed
	// back to it on detach, so that nothing the process was sent is lost.
	signal unix.Signal
}

func (p *Process) freeze(timeout time.Duration, fn func() error) (Pause, error) {
	started := time.Now()
	var attached []*tracee
	defer func() {
		for _, t := range attached {
			if !t.gone {
				detach(t)
			}
		}
	}()
	var err error
	if attached, err = p.seizeAll(); err != nil {
		return Pause{Duration: time.Since(started)}, err
	}
	deadline := started.Add(timeout)
	threads := 0
	for _, t := range attached {
		if err := waitStopped(t, deadline); err != nil {
			return Pause{Duration: time.Since(started)}, fmt.Errorf("process %d: %w: %v", p.PID, ErrNoStop, err)
		}
		if !t.gone {
			threads++
		}
	}
	err = fn()
	for _, t := range attached {
		if !t.gone {
			detach(t)
			t.gone = true
		}
	}
	return Pause{Threads: threads, Duration: time.Since(started)}, err
}

// seizeAll attaches to every thread and asks each to stop, passing over
// /proc/PID/task until a pass finds no thread it has not seen.
func (p *Process) seizeAll() ([]*tracee, error) {
	var attached []*tracee
	seen := map[int]bool{}
	for round := 0; ; round++ {
		if round == maxRounds {
			return attached, fmt.Errorf("process %d: %w: it created threads faster than they could be stopped (%d passes)", p.PID, ErrNoStop, maxRounds)
		}
		tids, err := p.tasks()
		if err != nil {
			return attached, err
		}
		added := 0
		for _, tid := range tids {
			if seen[tid] {
				continue
			}
			seen[tid] = true
			if err := unix.PtraceSeize(tid); err != nil {
				if errnoIs(err, unix.ESRCH) {
					continue // the thread exited
				}
				if errnoIs(err, unix.EPERM) {
					if by := p.tracer(); by != "" {
						return attached, fmt.Errorf("process %d: %w: it is already traced by %s; a process has one tracer at a time — detach that debugger first, or read with --no-stop", p.PID, ErrPermission, by)
					}
					return attached, fmt.Errorf("process %d: %w: stopping thread %d: %s", p.PID, ErrPermission, tid, needs)
				}
				return attached, fmt.Errorf("process %d: stopping thread %d: %w", p.PID, tid, err)
			}
			t := &tracee{tid: tid}
			attached = append(attached, t)
			if err := unix.PtraceInterrupt(tid); err != nil {
				if !errnoIs(err, unix.ESRCH) {
					return attached, fmt.Errorf("process %d: interrupting thread %d: %w", p.PID, tid, err)
				}
				t.gone = true
			}
			added++
		}
		if added == 0 {
			if len(attached) == 0 {
				return nil, fmt.Errorf("process %d: %w (it has no threads left)", p.PID, ErrNoProcess)
			}
			return attached, nil
		}
	}
}

// waitStopped waits until t reports a stop or its exit.
func waitStopped(t *tracee, deadline time.Time) error {
	for pause := 20 * time.Microsecond; ; pause = min(2*pause, time.Millisecond) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(t.tid, &ws, unix.WNOHANG|unix.WALL, nil)
		switch {
		case errnoIs(err, unix.EINTR):
			continue
		case errnoIs(err, unix.ECHILD):
			t.gone = true
			return nil
		case err != nil:
			return fmt.Errorf("waiting for thread %d: %w", t.tid, err)
		case pid == t.tid && (ws.Exited() || ws.Signaled()):
			t.gone = true
			return nil
		case pid == t.tid && ws.Stopped():
			// A PTRACE_EVENT_STOP is the interrupt (or a group stop,
			// which detaching leaves in place); anything else is a
			// signal on its way in, handed back on detach.
			if int(ws)>>16 != unix.PTRACE_EVENT_STOP {
				t.signal = ws.StopSignal()
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("thread %d did not stop in time (in uninterruptible sleep, state D?)", t.tid)
		}
		time.Sleep(pause)
	}
}

// detach resumes t, handing back a signal that arrived while it stopped.
func detach(t *tracee) {
	_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(t.tid), 0, uintptr(t.signal), 0, 0)
}
