//go:build linux && amd64

package ptracecall

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
)

// canary runs fixtures/programs/canary.c in mode with args.
func canary(t *testing.T, mode string, args ...string) *testprog.Proc {
	t.Helper()
	testprog.NeedRoot(t)
	bin := testprog.Build(t, "canary", "-rdynamic")
	return testprog.Start(t, bin, append([]string{mode}, args...)...)
}

// line returns the value of the "key value" line key the canary printed.
func line(t *testing.T, lines []string, key string) string {
	t.Helper()
	for _, l := range lines {
		if k, v, ok := strings.Cut(l, " "); ok && k == key {
			return v
		}
	}
	t.Fatalf("no %q line in %q", key, lines)
	return ""
}

// verdict checks the canary's report after its system call resumed.
func verdict(t *testing.T, lines []string, wantRet string) {
	t.Helper()
	if got := line(t, lines, "ret"); got != wantRet {
		t.Errorf("the canary's system call returned %s, want %s (-516 is ERESTART_RESTARTBLOCK leaking, -514 ERESTARTNOHAND, -512 ERESTARTSYS, -4 EINTR)", got, wantRet)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "bad ") || l == "corrupt" {
			t.Errorf("canary: %s", l)
		}
	}
}

// waitSyscall waits until the thread sleeps in a system call.
func waitSleeping(t *testing.T, pid, tid int) {
	t.Helper()
	for range 200 {
		st, err := statusFields("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(tid) + "/status")
		if err == nil && strings.HasPrefix(st["State"], "S") {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("thread %d of %d never went to sleep", tid, pid)
}

func addr(t *testing.T, p *testprog.Proc, key string) uint64 {
	t.Helper()
	a := p.Addrs[key]
	if len(a) != 1 {
		t.Fatalf("canary printed %d %q addresses", len(a), key)
	}
	return a[0]
}

func TestCallGetpidInRead(t *testing.T) {
	p := canary(t, "read")
	pid := p.PID()
	waitSleeping(t, pid, pid)
	ret, err := Call(pid, pid, addr(t, p, "getpid"), nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if int(ret) != pid {
		t.Errorf("getpid() in the canary returned %d, want %d", ret, pid)
	}
	p.Step(t)
	verdict(t, p.Lines, "1")
	_ = errors.Is
}
