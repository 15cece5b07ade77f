package allocator

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestLiveAllocatorsWithoutGDB is TestLiveAllocators' bar met with no gdb
// at all: jemalloc's mallctl, tcmalloc's GetStats and each allocator's
// trim called in one thread of the process by package ptracecall, after
// the canary. The figures match the allocator's own, the trim gives back
// what it held, and the process goes on answering.
func TestLiveAllocatorsWithoutGDB(t *testing.T) {
	testprog.NeedRoot(t)
	bin := testprog.Build(t, "allocfree", "-ldl")
	canary := &PtraceCanary{}
	canaryErr := canary.Prove()
	if canaryErr != nil && !errors.Is(canaryErr, ErrCanaryFailed) {
		t.Fatalf("the canary: %v", canaryErr)
	}
	for _, tc := range []struct {
		kind    Kind
		lib     string
		env     []string
		freeKey string
	}{
		{Jemalloc, "libjemalloc.so.2", []string{"MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1"}, ""},
		{Tcmalloc, "libtcmalloc_minimal.so.4", nil, "pageheap_free"},
		{Glibc, "", nil, ""},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			env := tc.env
			if tc.lib != "" {
				lib := "/usr/lib/x86_64-linux-gnu/" + tc.lib
				if _, err := os.Stat(lib); err != nil {
					t.Skipf("%s not installed (%v); .ci/run installs it", tc.lib, err)
				}
				env = append(env, "LD_PRELOAD="+lib)
			}
			p := testprog.StartWith(t, testprog.Options{Env: env}, bin)
			before := p.Values()
			d, err := Detect(proc.FS{}, p.PID())
			if err != nil || d.Kind != tc.kind {
				t.Fatalf("detected %+v, %v; want %s", d, err, tc.kind)
			}
			var said []string
			live := Live{NoGDB: true, Canary: canary}
			live.Injector.Notify = func(m string) { said = append(said, m) }
			if canaryErr != nil {
				// Where calls harm a process of memdiag's own, none is made
				// in the target: each path refuses, and the target lives on.
				_, _, err := live.Trim(context.Background(), p.PID(), d)
				if !errors.Is(err, ErrCanaryFailed) || len(said) != 0 {
					t.Errorf("the canary failed (%v), yet the trim said %v and %q", canaryErr, err, said)
				}
				p.Step(t)
				return
			}
			if tc.kind != Glibc {
				s, err := live.Capture(context.Background(), p.PID(), d)
				if err != nil {
					t.Fatal(err)
				}
				if !within(s.InUseBytes, uint64(before["allocated"]), 0.05) || !strings.Contains(s.Source, "without gdb") {
					t.Errorf("in use %d, the allocator's own %d (source %q)", s.InUseBytes, before["allocated"], s.Source)
				}
			}
			held := before["resident"] - before["active"]
			if tc.freeKey != "" {
				held = before[tc.freeKey]
			}
			paused, withoutGDB, err := live.Trim(context.Background(), p.PID(), d)
			if err == nil && !withoutGDB {
				t.Errorf("with NoGDB the trim says it went through gdb")
			}
			if err != nil {
				t.Fatal(err)
			}
			p.Lines = nil
			p.Step(t) // it still answers
			after := p.Values()
			back := before["vmrss"] - after["vmrss"]
			t.Logf("%s: trim without gdb took %v, gave back %d B of VmRSS (held %d free); said %q", tc.kind, paused, back, held, said)
			if tc.kind != Glibc && float64(back) < 0.8*float64(held) {
				t.Errorf("the trim gave back %d B of VmRSS; the allocator held %d B free", back, held)
			}
			if tc.kind == Glibc && back == 0 {
				t.Errorf("malloc_trim(0) gave nothing back")
			}
			if len(said) == 0 || !strings.Contains(said[0], "without gdb") {
				t.Errorf("the user was not told of the call: %q", said)
			}
		})
	}
}

// TestPtraceCanarySleepEndsOnTime: the canary's own check is what the
// harm looks like: a sleep called into must still end at its time.
func TestPtraceCanarySleepEndsOnTime(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	start := time.Now()
	err := (&PtraceCanary{}).Prove()
	took := time.Since(start)
	switch {
	case errors.Is(err, ErrCanaryFailed):
		t.Logf("calls harm a process on this host; the canary says so: %v", err)
	case err != nil:
		t.Fatal(err)
	case took < 400*time.Millisecond || took > 5*time.Second:
		t.Errorf("the canary took %v: it did not wait for its sleep to end", took)
	}
}

// TestNoCallWhenTheCanaryFails: where the canary was harmed, no call is
// made in the target, whatever the allocator: each path refuses, naming
// the canary's words, and the target answers as before.
func TestNoCallWhenTheCanaryFails(t *testing.T) {
	bin := testprog.Build(t, "allocfree", "-ldl")
	p := testprog.Start(t, bin)
	d, err := Detect(proc.FS{}, p.PID())
	if err != nil {
		t.Fatal(err)
	}
	broken := &PtraceCanary{}
	broken.once.Do(func() {
		broken.err = fmt.Errorf("%w: a sleep 0.4 of memdiag's own, called into, ended after 3ms (it said \"sleep: cannot read realtime clock: Unknown error 516\")", ErrCanaryFailed)
	})
	var said []string
	live := Live{NoGDB: true, Canary: broken}
	live.Injector.Notify = func(m string) { said = append(said, m) }
	if _, _, err := live.Trim(context.Background(), p.PID(), d); !errors.Is(err, ErrCanaryFailed) || !strings.Contains(err.Error(), "Unknown error 516") {
		t.Errorf("trim with a failed canary: %v", err)
	}
	if len(said) != 0 {
		t.Errorf("the target was called into: %q", said)
	}
	p.Step(t) // it still answers
}
