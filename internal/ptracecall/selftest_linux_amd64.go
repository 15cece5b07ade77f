//go:build linux && amd64

package ptracecall

import (
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// selfTestSleep is how long the self-test's sleep runs: long enough to be
// caught asleep and to show it ends at its time, not after.
const selfTestSleep = 500 * time.Millisecond

// selfTest proves the whole call path on this host before any target is
// touched: it runs sleep(1) as a child, calls getpid in it while it
// sleeps in clock_nanosleep, and checks that the call returned the
// child's pid, that the registers read back as saved (every Call checks
// that), and that sleep then exited 0 no sooner than its time — its
// system call restarted, not failed with errno 516. It needs a sleep
// command on PATH linked with glibc (libc.so.6).
//
// It cannot see what the read-back cannot: a vector register the kernel
// accepted but the CPU state does not hold. The package's tests check
// that from inside a process (fixtures/programs/canary.c).
func selfTest(timeout time.Duration) error {
	path, err := exec.LookPath("sleep")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSelfTest, err)
	}
	var stderr strings.Builder
	cmd := exec.Command(path, fmt.Sprintf("%.1f", selfTestSleep.Seconds()))
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: starting %s: %w", ErrSelfTest, path, err)
	}
	callErr := callInSleep(cmd.Process.Pid, timeout)
	if callErr != nil {
		_ = cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	took := time.Since(start)
	switch {
	case callErr != nil:
		return fmt.Errorf("%w: %w", ErrSelfTest, callErr)
	case waitErr != nil:
		return fmt.Errorf("%w: sleep after the call: %w (stderr %q)", ErrSelfTest, waitErr, stderr.String())
	case took < selfTestSleep:
		return fmt.Errorf("%w: sleep %v ended after %v: its interrupted sleep was not resumed", ErrSelfTest, selfTestSleep, took)
	}
	return nil
}

// callInSleep waits for the child to sleep, then calls getpid in it.
func callInSleep(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(selfTestSleep / 2)
	for {
		st, err := statusFields(proc.FS{}.PIDPath(pid, "status"))
		if err == nil && strings.HasPrefix(st["State"], "S") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sleep (pid %d) never went to sleep", pid)
		}
		time.Sleep(time.Millisecond)
	}
	fn, err := LookupFunc(pid, "libc.so.6", "getpid")
	if err != nil {
		return err
	}
	ret, err := Call(pid, pid, fn, nil, timeout)
	if err != nil {
		return err
	}
	if int(int32(ret)) != pid {
		return fmt.Errorf("getpid() in sleep (pid %d) returned %d", pid, ret)
	}
	return nil
}
