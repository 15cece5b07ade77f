//go:build linux && amd64

package ptracecall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/testprog"
)

// The tests run real processes: fixtures/programs/canary.c waits in a raw
// system call with every register it can name, and its red zone, set to
// known values, and reports after the call resumed whether any changed
// and what the system call returned.

// canary runs the canary in mode with args and waits for its "ready".
func canary(t *testing.T, mode string, args ...string) *testprog.Proc {
	t.Helper()
	testprog.NeedRoot(t)
	bin := testprog.Build(t, "canary", "-rdynamic")
	p := testprog.Start(t, bin, append([]string{mode}, args...)...)
	waitSleeping(t, p.PID(), p.PID())
	return p
}

// value returns the value of the canary's last "key value" line.
func value(t *testing.T, lines []string, key string) string {
	t.Helper()
	v, found := "", false
	for _, l := range lines {
		if k, rest, ok := strings.Cut(l, " "); ok && k == key {
			v, found = rest, true
		}
	}
	if !found {
		t.Fatalf("no %q line in the canary's output %q", key, lines)
	}
	return v
}

// verdict checks the canary's report after its system call resumed: it
// returned wantRet, and no register or red-zone byte changed.
func verdict(t *testing.T, lines []string, wantRet string) {
	t.Helper()
	if got := value(t, lines, "ret"); got != wantRet {
		t.Errorf("the canary's system call returned %s, want %s (-516 is ERESTART_RESTARTBLOCK leaking to user space, -514 ERESTARTNOHAND, -512 ERESTARTSYS, -4 EINTR)", got, wantRet)
	}
	verdictRegs(t, lines)
}

// verdictRegs checks that the canary found every register as it was.
func verdictRegs(t *testing.T, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, "bad ") || l == "corrupt" {
			t.Errorf("canary: %s", l)
		}
	}
	if !contains(lines, "intact") {
		t.Errorf("the canary did not report its registers intact: %q", lines)
	}
}

func contains(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// waitSleeping waits until the thread sleeps (in its system call).
func waitSleeping(t *testing.T, pid, tid int) {
	t.Helper()
	for range 400 {
		st, err := statusFields(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "status"))
		if err == nil && strings.HasPrefix(st["State"], "S") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("thread %d of %d never went to sleep", tid, pid)
}

// lookup resolves name in the canary, checking it against dlsym's answer
// when the canary printed one.
func lookup(t *testing.T, p *testprog.Proc, lib, name string) uint64 {
	t.Helper()
	a, err := LookupFunc(p.PID(), lib, name)
	if err != nil {
		t.Fatal(err)
	}
	if want, ok := p.Addrs[name]; ok && (len(want) != 1 || want[0] != a) {
		t.Fatalf("LookupFunc(%s, %s) = %#x, dlsym in the process says %#x", lib, name, a, want)
	}
	return a
}

// clobber is the canary's register-wrecking function for its CPU.
func clobber(t *testing.T, p *testprog.Proc) uint64 {
	t.Helper()
	name := "canary_clobber256"
	if value(t, p.Lines, "vector") == "avx512" {
		name = "canary_clobber512"
	}
	return lookup(t, p, "canary", name)
}

var clobberArgs = []uint64{1, 2, 3, 4, 5, 6}

// clobberWant is canary_clobber's result for clobberArgs: each argument
// weighted by its position, so that a swapped register shows.
const clobberWant = 1*1 + 2*2 + 3*3 + 4*4 + 5*5 + 6*6

func TestCallGetpidInRead(t *testing.T) {
	p := canary(t, "read")
	pid := p.PID()
	ret, err := Call(pid, pid, lookup(t, p, "libc.so.6", "getpid"), nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if int(int32(ret)) != pid {
		t.Errorf("getpid() in the canary returned %d, want %d", ret, pid)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestCallRestoresEverything calls a function that overwrites every
// vector, mask, general and control register, callee-saved ones too, and
// sets the direction flag: the canary, blocked in read(2), must find all
// of them as they were, and read must return the byte sent after.
func TestCallRestoresEverything(t *testing.T) {
	p := canary(t, "read")
	ret, err := Call(p.PID(), p.PID(), clobber(t, p), clobberArgs, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if int64(ret) == -1 {
		t.Fatal("the function was entered with a misaligned stack: (rsp+8) % 16 != 0")
	}
	if ret != clobberWant {
		t.Errorf("canary_clobber(1…6) = %d, want %d: arguments in the wrong registers", ret, clobberWant)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestCanaryDetectsLostXState is the control: restoring the general
// registers only, as gdb does when its PTRACE_SETREGSET fails, must make
// the canary report its vector registers changed — or the other tests
// prove nothing.
func TestCanaryDetectsLostXState(t *testing.T) {
	p := canary(t, "read")
	fn := clobber(t, p)
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		c.skipXStateRestore = true
		_, err := c.Call(fn, clobberArgs, 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	if !contains(p.Lines, "corrupt") || !contains(p.Lines, "bad vector 0") {
		t.Errorf("the canary did not notice its vector registers overwritten: %q", p.Lines)
	}
}

// TestCanaryDetectsLostRestart is the other control: a restore that
// loses orig_rax, so that the kernel no longer sees the interrupted
// system call, must show as issue 19's errno 516 in the sleeping canary.
func TestCanaryDetectsLostRestart(t *testing.T) {
	p := canary(t, "sleep", "1")
	fn := lookup(t, p, "libc.so.6", "getpid")
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		c.dropSyscall = true
		_, err := c.Call(fn, nil, time.Second)
		return err
	})
	if !errors.Is(err, ErrRestore) {
		t.Errorf("restore without orig_rax: %v, want ErrRestore from the read-back", err)
	}
	lines := strings.Split(strings.TrimSpace(p.Finish(t)), "\n")
	if got := value(t, lines, "ret"); got != "-516" {
		t.Errorf("the canary's sleep returned %s with orig_rax lost, want -516", got)
	}
}

// TestAbandonedSleepInCall: the thread sleeps in clock_nanosleep, whose
// restart lives in the thread's restart_block; the called function also
// sleeps (usleep) and is abandoned mid-sleep, which overwrites that
// restart_block with its own. Restarting the thread's sleep would now run
// the function's; it must instead return EINTR.
func TestAbandonedSleepInCall(t *testing.T) {
	p := canary(t, "sleep", "2")
	usleep := lookup(t, p, "libc.so.6", "usleep")
	time.Sleep(200 * time.Millisecond)
	_, err := Call(p.PID(), p.PID(), usleep, []uint64{700000}, 200*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("usleep(700 ms) with a 200 ms timeout: %v, want ErrTimeout", err)
	}
	if !errors.Is(err, ErrSyscallInterrupted) {
		t.Errorf("abandoned usleep: %v, want ErrSyscallInterrupted too", err)
	}
	lines := strings.Split(strings.TrimSpace(p.Finish(t)), "\n")
	verdictRegs(t, lines)
	if got := value(t, lines, "ret"); got != "-4" {
		t.Errorf("the canary's clock_nanosleep returned %s, want -4 (EINTR); 0 means it ran usleep's restart", got)
	}
}

// TestCallInSleep: the call interrupts clock_nanosleep, whose restart goes
// through restart_syscall (-ERESTART_RESTARTBLOCK, errno 516 if it leaked):
// the sleep must still end at its original time with 0.
func TestCallInSleep(t *testing.T) {
	start := time.Now()
	p := canary(t, "sleep", "2")
	fn := clobber(t, p)
	// Called 0.8 s in: a sleep re-executed from scratch instead of
	// continued would end at 2.8 s, one that failed at once at 0.8 s.
	time.Sleep(800 * time.Millisecond)
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		if nr, ok := c.InSyscall(); !ok || nr != unix.SYS_CLOCK_NANOSLEEP {
			t.Errorf("stopped in system call %d (%v), want clock_nanosleep", nr, ok)
		}
		if r := c.Regs(); int64(r.Rax) != -516 {
			t.Errorf("rax at the stop is %d, want -516 (ERESTART_RESTARTBLOCK)", int64(r.Rax))
		}
		_, err := c.Call(fn, clobberArgs, 2*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out := p.Finish(t)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	verdict(t, lines, "0")
	ms, _ := strconv.Atoi(value(t, lines, "elapsed_ms"))
	if ms < 1990 || ms > 2600 {
		t.Errorf("the 2 s sleep took %d ms", ms)
	}
	if err := p.Cmd.Wait(); err != nil {
		t.Errorf("canary: %v", err)
	}
	t.Logf("canary ran %v", time.Since(start))
}

// TestSleepCommand: coreutils sleep, the program issue 19 saw die with
// "cannot read realtime clock: Unknown error 516" under gdb, survives a
// call and exits 0 at its time.
func TestSleepCommand(t *testing.T) {
	testprog.NeedRoot(t)
	cmd := exec.Command("sleep", "2")
	cmd.Stderr = os.Stderr
	var out strings.Builder
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep command: %v", err)
	}
	pid := cmd.Process.Pid
	waitSleeping(t, pid, pid)
	time.Sleep(800 * time.Millisecond) // as in TestCallInSleep
	fn, err := LookupFunc(pid, "libc.so.6", "getpid")
	if err != nil {
		t.Fatal(err)
	}
	ret, err := Call(pid, pid, fn, nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if int(int32(ret)) != pid {
		t.Errorf("getpid() in sleep returned %d, want %d", ret, pid)
	}
	err = cmd.Wait()
	took := time.Since(start)
	if err != nil {
		t.Errorf("sleep 2: %v, stderr %q", err, out.String())
	}
	if took < 2*time.Second || took > 2600*time.Millisecond {
		t.Errorf("sleep 2 took %v", took)
	}
}

// TestMallocTrim calls malloc_trim(0) in the canary's main thread while a
// second thread mallocs and frees all along: the lock it needs is taken
// and released by a thread that keeps running.
func TestMallocTrim(t *testing.T) {
	p := canary(t, "trim")
	fn := lookup(t, p, "libc.so.6", "malloc_trim")
	for range 5 {
		ret, err := Call(p.PID(), p.PID(), fn, []uint64{0}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if r := int32(ret); r != 0 && r != 1 {
			t.Errorf("malloc_trim(0) = %d, want 0 or 1", r)
		}
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestCallOnRunningThread borrows the canary's worker, which runs in user
// space (malloc and free in a loop, orig_rax -1), and checks that it
// keeps working afterwards.
func TestCallOnRunningThread(t *testing.T) {
	p := canary(t, "trim")
	worker := otherThread(t, p.PID())
	fn := lookup(t, p, "libc.so.6", "getpid")
	for range 20 {
		ret, err := Call(p.PID(), worker, fn, nil, 2*time.Second)
		// A running thread may be caught for an instant where glibc blocks
		// every signal (or inside a restartable sequence): refused, as it
		// must be; a moment later it is elsewhere.
		for retry := 0; retry < 100 && (errors.Is(err, ErrSignalBlocked) || errors.Is(err, ErrBusy)); retry++ {
			time.Sleep(2 * time.Millisecond)
			ret, err = Call(p.PID(), worker, fn, nil, 2*time.Second)
		}
		if err != nil {
			t.Fatal(err)
		}
		if int(int32(ret)) != p.PID() {
			t.Fatalf("getpid() = %d, want %d", ret, p.PID())
		}
	}
	before := cpuTime(t, p.PID(), worker)
	time.Sleep(200 * time.Millisecond)
	if after := cpuTime(t, p.PID(), worker); after <= before {
		t.Errorf("the worker stopped running after the calls (utime+stime %d then %d)", before, after)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

func otherThread(t *testing.T, pid int) int {
	t.Helper()
	names, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if tid, _ := strconv.Atoi(n.Name()); tid != pid && tid > 0 {
			waitStarted(t, pid, tid)
			return tid
		}
	}
	t.Fatal("the canary has no second thread")
	return 0
}

// waitStarted waits until a new thread runs with SIGSEGV unblocked: glibc
// starts a thread with every signal blocked until its start routine, and
// such a thread is refused (ErrSignalBlocked).
func waitStarted(t *testing.T, pid, tid int) {
	t.Helper()
	for range 400 {
		st, err := statusFields(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "status"))
		if err == nil {
			if blocked, err := sigsetHasSEGV(st["SigBlk"]); err == nil && !blocked {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("thread %d of %d still blocks SIGSEGV", tid, pid)
}

// cpuTime is a thread's utime+stime in clock ticks.
func cpuTime(t *testing.T, pid, tid int) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(tid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// TestTimeoutRestores: a function that never returns is interrupted at
// the timeout and abandoned; the thread gets its own state back, its read
// resumes, and later calls on the Conn are refused.
func TestTimeoutRestores(t *testing.T) {
	p := canary(t, "read")
	spin := lookup(t, p, "canary", "canary_spin")
	getpid := lookup(t, p, "libc.so.6", "getpid")
	start := time.Now()
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		_, err := c.Call(spin, nil, 300*time.Millisecond)
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("spinning call: %v, want ErrTimeout", err)
		}
		if _, err := c.Call(getpid, nil, time.Second); !errors.Is(err, ErrAbandoned) {
			t.Errorf("call after an abandoned one: %v, want ErrAbandoned", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the timed-out call took %v", took)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestSelfDeadlockTimesOut is the case the timeout exists for: the
// borrowed thread holds the lock the function needs (it was stopped with
// canary_mutex held, as a thread stopped inside malloc holds an arena's).
// The call waits for ever, is abandoned at the timeout, and the thread
// resumes; having only waited, the abandoned call leaves the mutex
// usable.
func TestSelfDeadlockTimesOut(t *testing.T) {
	p := canary(t, "lockheld")
	_, err := Call(p.PID(), p.PID(), lookup(t, p, "canary", "canary_lock"), nil, 300*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("canary_lock() on the thread holding the lock: %v, want ErrTimeout", err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
	if !contains(p.Lines, "relock ok") {
		t.Errorf("the mutex is unusable after the abandoned call: %q", p.Lines)
	}
}

// TestOtherThreadsRun: while the main thread is borrowed, the worker
// keeps running.
func TestOtherThreadsRun(t *testing.T) {
	p := canary(t, "trim")
	worker := otherThread(t, p.PID())
	spin := lookup(t, p, "canary", "canary_spin_ms")
	before := cpuTime(t, p.PID(), worker)
	if ret, err := Call(p.PID(), p.PID(), spin, []uint64{300}, 3*time.Second); err != nil || ret != 300 {
		t.Fatalf("canary_spin_ms(300) = %d, %v", ret, err)
	}
	if after := cpuTime(t, p.PID(), worker); after <= before {
		t.Errorf("the worker did not run during the 300 ms call (utime+stime %d then %d ticks)", before, after)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestAlreadyTraced: a thread has one tracer; a second is refused with
// the first named.
func TestAlreadyTraced(t *testing.T) {
	p := canary(t, "read")
	fn := lookup(t, p, "libc.so.6", "getpid")
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		_, err := Call(p.PID(), p.PID(), fn, nil, time.Second)
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "already traced by process "+strconv.Itoa(os.Getpid())) {
			t.Errorf("second tracer: %v, want ErrPermission naming process %d", err, os.Getpid())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestStuckThreadRestoredLater: the function sleeps where no ptrace stop
// reaches it (a vfork parent waiting for its child, TASK_KILLABLE), so
// the thread does not stop when the timed-out call is interrupted. Call
// waits for it to stop, restores and detaches it, and only then returns
// ErrTimeout (returning earlier would let memdiag exit and the kernel
// detach the thread with the call's registers); the canary carries on
// intact.
func TestStuckThreadRestoredLater(t *testing.T) {
	p := canary(t, "read")
	fn := lookup(t, p, "canary", "canary_vfork_wait")
	start := time.Now()
	var told []string
	err := Run(p.PID(), p.PID(), Options{StopTimeout: 200 * time.Millisecond, Notify: func(m string) { told = append(told, m) }}, func(c *Conn) error {
		_, err := c.Call(fn, []uint64{1500}, 200*time.Millisecond)
		return err
	})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not stop") {
		t.Fatalf("call stuck in vfork: %v, want ErrTimeout for a thread that did not stop", err)
	}
	t.Log(err)
	if took := time.Since(start); took < 1400*time.Millisecond {
		t.Errorf("Run returned after %v, before the vfork child exited and the thread could be restored", took)
	}
	if st, _ := statusFields(filepath.Join("/proc", strconv.Itoa(p.PID()), "status")); st["TracerPid"] != "0" {
		t.Errorf("still traced by %s when Run returned", st["TracerPid"])
	}
	if len(told) != 1 || !strings.Contains(told[0], "waiting for it to stop") {
		t.Errorf("told %q, want one message that Run waits for the thread", told)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestExecDuringCall: the called function execs another program (as a
// target's user could make it do: exec a setuid binary). Nothing of the
// old program's state is written into the new one: Run says the process
// exec'd, and the new program runs to its end and exits 0 instead of
// faulting at registers that were not its own.
func TestExecDuringCall(t *testing.T) {
	p := canary(t, "read")
	fn := lookup(t, p, "canary", "canary_exec")
	// The new program outlives the call's timeout, as a setuid su waiting
	// for its password did: a tracer blind to the exec would interrupt it
	// and write the old registers back.
	_, err := Call(p.PID(), p.PID(), fn, nil, 300*time.Millisecond)
	if !errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), "exec'd") {
		t.Fatalf("call that execs: %v, want ErrNoProcess saying the process exec'd", err)
	}
	if rest := p.Finish(t); !strings.Contains(rest, "exec survived") {
		t.Errorf("the exec'd program printed %q, want \"exec survived\"", rest)
	}
	if err := p.Cmd.Wait(); err != nil {
		t.Errorf("the exec'd program: %v, want exit status 0", err)
	}
}

// TestPatientCallRuns: a function that runs past its timeout, busy (not
// parked on a lock), is waited for when Patient is set: it returns its
// result, and Notify is told of each further wait. Without Patient it is
// abandoned (TestTimeoutRestores covers that).
func TestPatientCallRuns(t *testing.T) {
	p := canary(t, "read")
	spin := lookup(t, p, "canary", "canary_spin_ms")
	var told []string
	var ret uint64
	err := Run(p.PID(), p.PID(), Options{Patient: true, Notify: func(m string) { told = append(told, m) }}, func(c *Conn) error {
		var err error
		ret, err = c.Call(spin, []uint64{700}, 200*time.Millisecond)
		return err
	})
	if err != nil || ret != 700 {
		t.Fatalf("canary_spin_ms(700) with a 200 ms timeout, patient: %d, %v", ret, err)
	}
	if len(told) == 0 || !strings.Contains(told[0], "still running after 200ms") {
		t.Errorf("told %q, want a message that the call is still running", told)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestRestoreWaitsForRunningThread: should Run end while the thread still
// runs the function (an unexpected error between resuming it and its
// return), the thread is interrupted and restored once it stops, never
// detached running towards the trap address.
func TestRestoreWaitsForRunningThread(t *testing.T) {
	p := canary(t, "read")
	spin := lookup(t, p, "canary", "canary_spin_ms")
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		_, err := c.start(spin, []uint64{200})
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("Run left with the thread in the call: %v, want the still-running error", err)
	}
	for range 300 {
		if st, _ := statusFields(filepath.Join("/proc", strconv.Itoa(p.PID()), "status")); st["TracerPid"] == "0" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestFaultRestores: a function that dereferences a bad pointer is
// abandoned; the SIGSEGV is not delivered (the canary would die of it) and
// the thread resumes intact.
func TestFaultRestores(t *testing.T) {
	p := canary(t, "read")
	_, err := Call(p.PID(), p.PID(), lookup(t, p, "canary", "canary_fault"), nil, 2*time.Second)
	if !errors.Is(err, ErrFault) {
		t.Fatalf("faulting call: %v, want ErrFault", err)
	}
	t.Log(err)
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestNullCallIsAFault: a function calling a null pointer faults at rip
// 0, the trap address, like a return there; the stack pointer, one word
// lower, tells it from our return.
func TestNullCallIsAFault(t *testing.T) {
	p := canary(t, "read")
	_, err := Call(p.PID(), p.PID(), lookup(t, p, "canary", "canary_call_null"), nil, 2*time.Second)
	if !errors.Is(err, ErrFault) {
		t.Fatalf("a call through a null pointer: %v, want ErrFault", err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// lookupData returns an address in a writable, non-executable mapping of
// the process: its [heap].
func lookupData(t *testing.T, pid int) uint64 {
	t.Helper()
	maps, err := readMaps(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range maps {
		if m.Path == "[heap]" && !m.Executable() {
			return m.Start
		}
	}
	t.Fatal("no [heap]")
	return 0
}

// TestNotCodeRefused: an address in no executable mapping is refused
// before anything is written.
func TestNotCodeRefused(t *testing.T) {
	p := canary(t, "read")
	data := lookupData(t, p.PID())
	for _, fn := range []uint64{trapAddr, 0x1000, data} {
		if _, err := Call(p.PID(), p.PID(), fn, nil, time.Second); !errors.Is(err, ErrNotCode) {
			t.Errorf("call of %#x: %v, want ErrNotCode", fn, err)
		}
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestSignalDuringCallIsHeld: a SIGUSR1 sent to the thread while a call
// runs is not delivered into the call; it is delivered once the thread is
// restored (the canary's handler counts it, and its read, SA_RESTART,
// resumes).
func TestSignalDuringCallIsHeld(t *testing.T) {
	p := canary(t, "read")
	spin := lookup(t, p, "canary", "canary_spin_ms")
	pid := p.PID()
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = unix.Tgkill(pid, pid, unix.SIGUSR1)
	}()
	var held int
	err := Run(pid, pid, Options{}, func(c *Conn) error {
		ret, err := c.Call(spin, []uint64{400}, 3*time.Second)
		if err == nil && ret != 400 {
			t.Errorf("canary_spin_ms(400) = %d", ret)
		}
		held = len(c.held)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if held != 1 {
		t.Errorf("%d signals held during the call, want 1", held)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
	if got := value(t, p.Lines, "signals"); got != "1" {
		t.Errorf("the canary's SIGUSR1 handler ran %s times, want 1", got)
	}
}

// TestSignalDuringTimedOutCall: a signal held during a call that is
// then abandoned at its timeout (the thread detached from the interrupt's
// stop, where no signal can be handed back) is sent again with tgkill,
// and the canary's handler still runs once.
func TestSignalDuringTimedOutCall(t *testing.T) {
	p := canary(t, "read")
	spin := lookup(t, p, "canary", "canary_spin")
	pid := p.PID()
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = unix.Tgkill(pid, pid, unix.SIGUSR1)
	}()
	if _, err := Call(pid, pid, spin, nil, 400*time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Fatalf("spinning call: %v, want ErrTimeout", err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
	if got := value(t, p.Lines, "signals"); got != "1" {
		t.Errorf("the canary's SIGUSR1 handler ran %s times, want 1", got)
	}
}

// TestErrnoPreserved: close(-1) sets errno to EBADF in the thread; with
// Options.ErrnoLocation the canary's errno is still its own 4242 after,
// without it EBADF (the control).
func TestErrnoPreserved(t *testing.T) {
	for _, preserve := range []bool{true, false} {
		p := canary(t, "read")
		closeFn := lookup(t, p, "libc.so.6", "close")
		var opts Options
		if preserve {
			opts.ErrnoLocation = lookup(t, p, "libc.so.6", "__errno_location")
		}
		err := Run(p.PID(), p.PID(), opts, func(c *Conn) error {
			ret, err := c.Call(closeFn, []uint64{^uint64(0)}, time.Second)
			if err == nil && int32(ret) != -1 {
				t.Errorf("close(-1) = %d", int32(ret))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		p.Step(t)
		verdict(t, p.Lines, "1")
		want := "4242"
		if !preserve {
			want = strconv.Itoa(int(unix.EBADF))
		}
		if got := value(t, p.Lines, "errno"); got != want {
			t.Errorf("preserve %v: the canary's errno after close(-1) is %s, want %s", preserve, got, want)
		}
	}
}

// TestX87StackEmptiedForCall: a thread stopped in user space in the
// middle of x87 arithmetic has values on its x87 register stack; the ABI
// wants it empty at a call, so the function is entered with it empty, and
// the thread gets its values back.
func TestX87StackEmptiedForCall(t *testing.T) {
	p := canary(t, "x87")
	worker := otherThread(t, p.PID())
	tags := lookup(t, p, "canary", "canary_x87_tags")
	for range 5 {
		ret, err := Call(p.PID(), worker, tags, nil, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if ret != 0 {
			t.Errorf("the function was entered with x87 tags %#x, want 0 (an empty register stack)", ret)
		}
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
	if !contains(p.Lines, "x87 intact") {
		t.Errorf("the worker's x87 register stack changed: %q", p.Lines)
	}
}

// TestStoppedProcessRefused: a process stopped by SIGSTOP is refused and
// left stopped; after SIGCONT it carries on intact.
func TestStoppedProcessRefused(t *testing.T) {
	p := canary(t, "read")
	pid := p.PID()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if st := waitState(pid, "T"); st != "T" {
		t.Fatalf("SIGSTOP did not stop the canary: state %s", st)
	}
	_, err := Call(pid, pid, lookup(t, p, "libc.so.6", "getpid"), nil, time.Second)
	if !errors.Is(err, ErrStopped) {
		t.Errorf("call in a stopped process: %v, want ErrStopped", err)
	}
	// Detaching wakes the thread, which rejoins the group stop at once.
	if st := waitState(pid, "T"); st != "T" {
		t.Errorf("the process is no longer stopped: state %s", st)
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestPushAndRead passes an out-parameter on the scratch stack, as
// mallctl's oldp and oldlenp need: clock_gettime fills a timespec there,
// across two calls in one stop.
func TestPushAndRead(t *testing.T) {
	p := canary(t, "read")
	fn := lookup(t, p, "libc.so.6", "clock_gettime")
	var secs [2]uint64
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		for i := range secs {
			ts, err := c.Push(make([]byte, 16))
			if err != nil {
				return err
			}
			if ts%16 != 0 || ts >= c.Regs().Rsp-redZone {
				t.Errorf("pushed at %#x: not aligned, or not below the red zone (rsp %#x)", ts, c.Regs().Rsp)
			}
			ret, err := c.Call(fn, []uint64{unix.CLOCK_REALTIME, ts}, time.Second)
			if err != nil || ret != 0 {
				return errors.Join(err, errors.New("clock_gettime failed"))
			}
			b, err := c.Read(ts, 16)
			if err != nil {
				return err
			}
			secs[i] = binary.LittleEndian.Uint64(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(time.Now().Unix())
	for _, s := range secs {
		if s+5 < now || s > now+5 {
			t.Errorf("clock_gettime in the target said %d s, now is %d", s, now)
		}
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// preloaded runs the canary in read mode with the allocator lib
// preloaded, skipping the test when the library is not installed.
func preloaded(t *testing.T, lib string) *testprog.Proc {
	t.Helper()
	path := filepath.Join("/usr/lib/x86_64-linux-gnu", lib)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not installed (%v); .ci/run installs libjemalloc2 and libtcmalloc-minimal4", lib, err)
	}
	testprog.NeedRoot(t)
	bin := testprog.Build(t, "canary", "-rdynamic")
	p := testprog.StartWith(t, testprog.Options{Env: []string{"LD_PRELOAD=" + path}}, bin, "read")
	waitSleeping(t, p.PID(), p.PID())
	return p
}

// cString is s NUL-terminated.
func cString(s string) []byte { return append([]byte(s), 0) }

// TestJemallocMallctl is what memdiag asks jemalloc: mallctl("epoch")
// to refresh the statistics, then mallctl("stats.allocated", &v, &len,
// NULL, 0), its out-parameters on the scratch stack.
func TestJemallocMallctl(t *testing.T) {
	p := preloaded(t, "libjemalloc.so.2")
	mallctl := lookup(t, p, "libjemalloc.so", "mallctl")
	var allocated uint64
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		epochName, err := c.Push(cString("epoch"))
		if err != nil {
			return err
		}
		epoch, err := c.Push(binary.LittleEndian.AppendUint64(nil, 1))
		if err != nil {
			return err
		}
		if ret, err := c.Call(mallctl, []uint64{epochName, 0, 0, epoch, 8}, 2*time.Second); err != nil || ret != 0 {
			return errors.Join(err, errors.New("mallctl(epoch) failed"))
		}
		name, err := c.Push(cString("stats.allocated"))
		if err != nil {
			return err
		}
		out, err := c.Push(make([]byte, 8))
		if err != nil {
			return err
		}
		outLen, err := c.Push(binary.LittleEndian.AppendUint64(nil, 8))
		if err != nil {
			return err
		}
		if ret, err := c.Call(mallctl, []uint64{name, out, outLen, 0, 0}, 2*time.Second); err != nil || ret != 0 {
			return errors.Join(err, fmt.Errorf("mallctl(stats.allocated) = %d", ret))
		}
		b, err := c.Read(out, 8)
		if err != nil {
			return err
		}
		allocated = binary.LittleEndian.Uint64(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if allocated == 0 || allocated > 1<<30 {
		t.Errorf("jemalloc's stats.allocated in the canary is %d bytes", allocated)
	}
	t.Logf("stats.allocated %d bytes", allocated)
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestTcmallocGetStats: MallocExtension_GetStats(buf, len) fills a
// buffer on the scratch stack with tcmalloc's report.
func TestTcmallocGetStats(t *testing.T) {
	p := preloaded(t, "libtcmalloc_minimal.so.4")
	getStats := lookup(t, p, "libtcmalloc_minimal.so", "MallocExtension_GetStats")
	var report string
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		const size = 8 << 10
		buf, err := c.Push(make([]byte, size))
		if err != nil {
			return err
		}
		if _, err := c.Call(getStats, []uint64{buf, size}, 2*time.Second); err != nil {
			return err
		}
		b, err := c.Read(buf, size)
		if err != nil {
			return err
		}
		report, _, _ = strings.Cut(string(b), "\x00")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(report, "MALLOC:") {
		t.Errorf("GetStats wrote %q, no MALLOC: lines", report)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestXStateSize: the extended state is saved whole, at the size the CPU
// reports for the features the kernel enabled (CPUID 0xD: 2.4 KiB with
// AVX-512, 11 KiB with AMX tiles), which the kernel also writes in the
// area's software-reserved bytes.
func TestXStateSize(t *testing.T) {
	p := canary(t, "read")
	want, _ := strconv.Atoi(value(t, p.Lines, "xsave_size"))
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		if c.XStateSize() != want {
			t.Errorf("saved %d bytes of extended state, CPUID 0xD says %d", c.XStateSize(), want)
		}
		// For ptrace the kernel puts XCR0 in the first word of the
		// legacy area's software-reserved bytes, as gdb reads it.
		xcr0 := binary.LittleEndian.Uint64(c.xstate[464:])
		t.Logf("XSAVE area %d bytes, XCR0 %#x", c.XStateSize(), xcr0)
		if xcr0&3 != 3 {
			t.Errorf("XCR0 %#x in the saved area lacks x87 and SSE: not an XSAVE area", xcr0)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestXStateExactSize: the area read with a buffer that had to grow is
// the same, and the kernel refuses to take back anything shorter — the
// EFAULT ("Bad address") gdb 13 meets where the area outgrew its buffer.
func TestXStateExactSize(t *testing.T) {
	p := canary(t, "read")
	err := Run(p.PID(), p.PID(), Options{}, func(c *Conn) error {
		grown, err := readXStateFrom(c.tid, 64)
		if err != nil {
			return err
		}
		if firstDiff(grown, c.xstate) >= 0 {
			t.Errorf("the area read from a 64-byte start (%d bytes) differs from the one saved (%d)", len(grown), len(c.xstate))
		}
		if err := setRegset(c.tid, ntX86XState, c.xstate[:len(c.xstate)-64]); !errors.Is(err, unix.EFAULT) {
			t.Errorf("PTRACE_SETREGSET with 64 bytes less: %v, want EFAULT", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestGroupStopDuringCall: SIGSTOP sent to the process while the call
// runs does not stop the call; the process is stopped once the thread is
// restored, and SIGCONT resumes it intact.
func TestGroupStopDuringCall(t *testing.T) {
	p := canary(t, "read")
	pid := p.PID()
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = unix.Kill(pid, unix.SIGSTOP)
	}()
	ret, err := Call(pid, pid, lookup(t, p, "canary", "canary_spin_ms"), []uint64{400}, 3*time.Second)
	if err != nil || ret != 400 {
		t.Fatalf("canary_spin_ms(400) = %d, %v", ret, err)
	}
	if st := waitState(pid, "T"); st != "T" {
		t.Errorf("the SIGSTOP sent during the call did not stop the process: state %s", st)
	}
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestExitDuringCall: a function that ends the process is reported as
// such; there is nothing left to restore.
func TestExitDuringCall(t *testing.T) {
	p := canary(t, "read")
	_, err := Call(p.PID(), p.PID(), lookup(t, p, "libc.so.6", "_exit"), []uint64{3}, 2*time.Second)
	if !errors.Is(err, ErrExited) {
		t.Errorf("calling _exit(3): %v, want ErrExited", err)
	}
	t.Log(err)
}

// TestRseqRefused: a thread stopped inside a restartable sequence is
// refused (the kernel could no longer abort the sequence), and the
// process carries on.
func TestRseqRefused(t *testing.T) {
	p := canary(t, "rseq")
	if contains(p.Lines, "rseq off") {
		t.Skip("glibc registered no rseq area (glibc.pthread.rseq=0, or glibc before 2.35)")
	}
	worker := otherThread(t, p.PID())
	fn := lookup(t, p, "libc.so.6", "getpid")
	busy := 0
	for range 10 {
		ret, err := Call(p.PID(), worker, fn, nil, time.Second)
		switch {
		case errors.Is(err, ErrBusy):
			busy++
		case err != nil:
			t.Fatal(err)
		case int(int32(ret)) != p.PID():
			t.Fatalf("getpid() = %d", ret)
		}
	}
	t.Logf("%d of 10 calls refused", busy)
	if busy == 0 {
		t.Error("never refused a thread spinning inside a restartable sequence")
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

// TestAltStackRefused: a thread stopped in a signal handler running on a
// malloc'd alternate stack is refused, and both the handler and the
// interrupted read carry on.
func TestAltStackRefused(t *testing.T) {
	p := canary(t, "altstack")
	pid := p.PID()
	if err := unix.Tgkill(pid, pid, unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	inHandler := false
	for range 200 {
		// /proc/PID/syscall: "NR ARGS… SP PC" while blocked.
		b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "syscall"))
		f := strings.Fields(string(b))
		if len(f) == 9 {
			sp, _ := strconv.ParseUint(strings.TrimPrefix(f[7], "0x"), 16, 64)
			maps, err := readMaps(pid)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := findStack(maps, sp); errors.Is(err, ErrNoStack) {
				inHandler = true
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !inHandler {
		t.Fatal("the canary's SIGUSR2 handler never blocked on its alternate stack")
	}
	_, err := Call(pid, pid, lookup(t, p, "libc.so.6", "getpid"), nil, time.Second)
	if !errors.Is(err, ErrNoStack) {
		t.Errorf("call on a thread in a handler on an alternate stack: %v, want ErrNoStack", err)
	}
	t.Log(err)
	p.Step(t) // the handler's read
	p.Step(t) // the restarted read
	verdict(t, p.Lines, "1")
}

func TestNoSuchThread(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := Call(1<<22+12345, 1<<22+12345, 0x1000, nil, time.Second); !errors.Is(err, ErrNoProcess) {
		t.Errorf("no such process: %v, want ErrNoProcess", err)
	}
	if _, err := Call(os.Getppid(), os.Getpid(), 0x1000, nil, time.Second); !errors.Is(err, ErrNoProcess) {
		t.Errorf("a thread of another process: %v, want ErrNoProcess", err)
	}
}

// TestStartTimeChecked: a caller that resolved addresses in one process
// names its start time; another process with that pid is refused.
func TestStartTimeChecked(t *testing.T) {
	p := canary(t, "read")
	fn := lookup(t, p, "libc.so.6", "getpid")
	start, err := processStart(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	err = Run(p.PID(), p.PID(), Options{StartTime: start + "1"}, func(*Conn) error {
		t.Error("ran in a process of another start time")
		return nil
	})
	if !errors.Is(err, ErrNoProcess) {
		t.Errorf("wrong start time: %v, want ErrNoProcess", err)
	}
	err = Run(p.PID(), p.PID(), Options{StartTime: start}, func(c *Conn) error {
		_, err := c.Call(fn, nil, time.Second)
		return err
	})
	if err != nil {
		t.Errorf("right start time: %v", err)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
}

func TestSelfTest(t *testing.T) {
	testprog.NeedRoot(t)
	if err := SelfTest(2 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestLookupFuncRefusals(t *testing.T) {
	p := canary(t, "read")
	for _, c := range []struct{ lib, name string }{
		{"libc.so.6", "no_such_function_here"},
		{"libnotmapped.so", "getpid"},
		{"libc.so.6", "strlen"},  // an IFUNC
		{"libc.so.6", "environ"}, // data, not a function
	} {
		if a, err := LookupFunc(p.PID(), c.lib, c.name); !errors.Is(err, ErrSymbol) {
			t.Errorf("LookupFunc(%s, %s) = %#x, %v; want ErrSymbol", c.lib, c.name, a, err)
		}
	}
	if _, err := LookupFunc(p.PID(), "libc.so", "getpid"); err != nil {
		t.Errorf("libc.so as a prefix of libc.so.6: %v", err)
	}
}

func TestPickThread(t *testing.T) {
	p := canary(t, "trim")
	tid, err := PickThread(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if tid != p.PID() {
		t.Errorf("PickThread chose %d, want the main thread %d, asleep in read", tid, p.PID())
	}
}

// waitState waits up to a second for the process's state letter to be
// want, and returns the last one seen.
func waitState(pid int, want string) string {
	var st map[string]string
	for range 200 {
		st, _ = statusFields(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		if strings.HasPrefix(st["State"], want) {
			return want
		}
		time.Sleep(5 * time.Millisecond)
	}
	return st["State"]
}
