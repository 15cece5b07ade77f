package allocator

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/memdiag/memdiag/internal/gdbtest"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/testprog"
)

// preload returns the path of an allocator library Debian installs, or
// skips the test.
func preload(t *testing.T, lib, pkg string) string {
	t.Helper()
	p := "/usr/lib/x86_64-linux-gnu/" + lib
	if _, err := os.Stat(p); err != nil {
		t.Skipf("%s not installed (%v); .ci/run installs %s", lib, err, pkg)
	}
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	return p
}

// TestLiveAllocators is issue 13's bar on real processes: allocfree.c
// under jemalloc (decay off, so freed pages stay) and tcmalloc through
// LD_PRELOAD, memory allocated on four threads and freed on a fifth. The
// allocator is named; in use is within 5 % of its own figure; in use plus
// what it keeps within 5 % of its resident figure; and a trim gives back at
// least 80 % of the free pages it held.
func TestLiveAllocators(t *testing.T) {
	bin := testprog.Build(t, "allocfree", "-ldl")
	for _, tc := range []struct {
		kind     Kind
		lib, pkg string
		env      []string
		freeKey  string // the program's figure of free pages held
	}{
		{Jemalloc, "libjemalloc.so.2", "libjemalloc2", []string{"MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1"}, ""},
		{Tcmalloc, "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4", nil, "pageheap_free"},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			lib := preload(t, tc.lib, tc.pkg)
			p := testprog.StartWith(t, testprog.Options{Env: append([]string{"LD_PRELOAD=" + lib}, tc.env...)}, bin)
			before := p.Values()
			d, err := Detect(proc.FS{}, p.PID())
			if err != nil || d.Kind != tc.kind {
				t.Fatalf("detected %+v, %v; want %s", d, err, tc.kind)
			}
			live := Live{}
			s, err := live.Capture(context.Background(), p.PID(), d)
			if gdbtest.Refused(t, err, p.PID()) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !within(s.InUseBytes, uint64(before["allocated"]), 0.05) {
				t.Errorf("in use %d, the allocator's own %d", s.InUseBytes, before["allocated"])
			}
			if sum := s.InUseBytes + s.RetainedBytes(); !within(sum, s.ResidentBytes, 0.05) || !within(s.ResidentBytes, uint64(before["resident"]), 0.05) {
				t.Errorf("in use + kept %d, resident %d; the program says resident %d", sum, s.ResidentBytes, before["resident"])
			}
			// The free pages the allocator held: jemalloc resident − active,
			// tcmalloc its page heap's free bytes.
			held := before["resident"] - before["active"]
			if tc.freeKey != "" {
				held = before[tc.freeKey]
			}
			if _, _, err := live.Trim(context.Background(), p.PID(), d); err != nil {
				t.Fatal(err)
			}
			p.Lines = nil
			p.Step(t)
			after := p.Values()
			back := before["vmrss"] - after["vmrss"]
			t.Logf("%s: in use %d, kept %d (%v); held %d free; trim gave back %d B of VmRSS", tc.kind, s.InUseBytes, s.RetainedBytes(), s.Parts, held, back)
			if float64(back) < 0.8*float64(held) {
				t.Errorf("the trim gave back %d B of VmRSS; the allocator held %d B free", back, held)
			}
		})
	}
}
