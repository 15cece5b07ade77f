package syscalltrace_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/pprof/profile"
	"github.com/klauspost/compress/zstd"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/syscalltrace"
)

// truth is what leaker printed it left mapped.
type truth struct {
	leaks  []uint64          // 1 MiB each, from leak_buffer
	pieces map[uint64]uint64 // start → size: grown, partial and fixed pieces
}

func readTruth(t *testing.T, out []byte) truth {
	t.Helper()
	tr := truth{pieces: map[uint64]uint64{}}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || !strings.HasPrefix(f[1], "0x") {
			continue
		}
		addr, err := strconv.ParseUint(f[1][2:], 16, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		switch f[0] {
		case "leak":
			tr.leaks = append(tr.leaks, addr)
		case "grown", "partial", "fixed":
			size, _ := strconv.ParseUint(f[2], 10, 64)
			tr.pieces[addr] = size
		}
	}
	if len(tr.leaks) == 0 || len(tr.pieces) != 6 && len(tr.pieces) != 5 {
		t.Fatalf("leaker output has %d leaks and %d pieces, want some and 6:\n%s", len(tr.leaks), len(tr.pieces), out)
	}
	return tr
}

// replayPaths opens trace files as the trace command does and replays them.
func replayPaths(t *testing.T, paths ...string) (*syscalltrace.Replay, []*syscalltrace.Input) {
	t.Helper()
	files, pids, err := syscalltrace.Expand(paths)
	if err != nil {
		t.Fatal(err)
	}
	var inputs []*syscalltrace.Input
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		in, err := syscalltrace.OpenFile(p, f, syscalltrace.FormatAuto, pids[p])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(in.Close)
		inputs = append(inputs, in)
	}
	// As the commands read them: one strace file on two workers, several
	// merged, other formats on a pipe.
	src, stop := syscalltrace.Combine(inputs, 2)
	t.Cleanup(stop)
	r := syscalltrace.NewReplay(true)
	if err := r.ApplyAll(src); err != nil {
		t.Fatal(err)
	}
	return r, inputs
}

func hasFrame(m *syscalltrace.Mapping, fn string) bool {
	for _, f := range m.Frames {
		if f.Func == fn {
			return true
		}
	}
	return false
}

// checkOutstanding asserts the exact outstanding set the program reported:
// its leaks and pieces present with their exact sizes, and nothing made by
// the churning workers.
func checkOutstanding(t *testing.T, r *syscalltrace.Replay, tr truth, stacks bool) {
	t.Helper()
	out := r.Outstanding()
	byStart := map[uint64]*syscalltrace.Mapping{}
	mainTID := -1
	for _, m := range out {
		byStart[m.Start] = m
	}
	for _, a := range tr.leaks {
		m := byStart[a]
		if m == nil || m.Len() != 1<<20 {
			t.Errorf("leak %#x: outstanding %+v, want 1 MiB", a, m)
			continue
		}
		mainTID = m.TID
		if stacks && !hasFrame(m, "leak_buffer") {
			t.Errorf("leak %#x: stack %v lacks leak_buffer", a, m.Frames)
		}
	}
	for a, size := range tr.pieces {
		if m := byStart[a]; m == nil || m.Len() != size {
			t.Errorf("piece %#x: outstanding %+v, want %d bytes", a, m, size)
		}
	}
	if stacks {
		leaked := 0
		for _, m := range out {
			if hasFrame(m, "leak_buffer") {
				leaked++
			}
			if hasFrame(m, "churn_worker") {
				t.Errorf("a churned mapping is outstanding: %#x %d B", m.Start, m.Len())
			}
		}
		if leaked != len(tr.leaks) {
			t.Errorf("%d outstanding mappings under leak_buffer, want exactly %d", leaked, len(tr.leaks))
		}
	}
	for _, m := range out {
		if m.TID != mainTID && m.Len() <= 1<<20 && m.Anonymous && !m.Grown {
			// Workers only churn: whatever they mapped, they unmapped.
			t.Errorf("mapping %#x (%d B) made by worker %d is outstanding", m.Start, m.Len(), m.TID)
		}
	}
}

// TestFixtureTraces replays every captured trace of leaker (strace in four
// forms, gzip, perf trace with and without call graphs) and checks the
// exact outstanding set against what leaker printed in that run.
func TestFixtureTraces(t *testing.T) {
	dir := filepath.Join("..", "fixtures", "traces")
	tests := []struct {
		trace, out string
		format     syscalltrace.Format
		stacks     bool
		noMremap   bool // the tracer has no mremap events (sysdig)
	}{
		{"leaker-f-tt-T.strace", "leaker-f-tt-T.out", syscalltrace.FormatStrace, false, false},
		{"leaker-f-tt-T.strace.gz", "leaker-f-tt-T.strace.gz.out", syscalltrace.FormatStrace, false, false},
		{"leaker-k.strace", "leaker-k.out", syscalltrace.FormatStrace, true, false},
		{"leaker-stderr.strace", "leaker-stderr.out", syscalltrace.FormatStrace, false, false},
		{"leaker-ff", "leaker-ff.out", syscalltrace.FormatStrace, false, false},
		{"leaker.perf", "leaker.perf.out", syscalltrace.FormatPerfTrace, false, false},
		{"leaker-cg.perf", "leaker-cg.perf.out", syscalltrace.FormatPerfTrace, true, false},
		{"leaker.bt", "leaker.bt.out", syscalltrace.FormatBpftrace, true, false},
		// Constructed from the strace capture in sysdig's documented formats
		// (fixtures/construct-sysdig.py): sysdig cannot run here.
		{"constructed-sysdig.txt", "leaker-f-tt-T.out", syscalltrace.FormatSysdig, false, true},
		{"constructed-sysdig.json", "leaker-f-tt-T.out", syscalltrace.FormatSysdigJSON, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.trace, func(t *testing.T) {
			out, err := os.ReadFile(filepath.Join(dir, tt.out))
			if err != nil {
				t.Fatal(err)
			}
			r, inputs := replayPaths(t, filepath.Join(dir, tt.trace))
			if inputs[0].Format != tt.format {
				t.Errorf("detected %s, want %s", inputs[0].Format, tt.format)
			}
			if lost := inputs[0].Lost(); lost > 0 {
				t.Skipf("this capture lost %d events; its replay cannot be exact", lost)
			}
			tr := readTruth(t, out)
			if tt.noMremap {
				// Without mremap events the grown buffer stays where it was
				// first mapped: check the rest.
				for a, size := range tr.pieces {
					if size == 4<<20 {
						delete(tr.pieces, a)
					}
				}
			}
			checkOutstanding(t, r, tr, tt.stacks)
		})
	}
}

// TestStraceLeakerLive is the bar: a real strace -k of a threaded
// program leaking 50 × 1 MiB from one function amid 2,000 balanced pairs;
// exactly those 50 under that function's stack, and a pprof profile that
// go tool pprof opens.
func TestStraceLeakerLive(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Skipf("strace not found (%v); .ci/run installs it", err)
	}
	bin := testprog.Build(t, "leaker", "-g", "-fno-omit-frame-pointer")
	dir := t.TempDir()
	trace := filepath.Join(dir, "leaker.strace")
	cmd := exec.Command(straceBin, "-f", "-k", "-tt", "-e", "trace=memory,clone,clone3,execve", "-o", trace, bin)
	stdout, err := cmd.Output()
	if err != nil {
		t.Skipf("strace could not trace here (%v): needs ptrace permission", err)
	}
	tr := readTruth(t, stdout)
	if len(tr.leaks) != 50 {
		t.Fatalf("%d leaks printed", len(tr.leaks))
	}
	r, _ := replayPaths(t, trace)
	checkOutstanding(t, r, tr, true)
	if r.Stats.Calls[syscalltrace.CallMunmap] < 2000 {
		t.Errorf("%d munmaps replayed, want the 2,000 balanced pairs", r.Stats.Calls[syscalltrace.CallMunmap])
	}

	out := r.Outstanding()
	groups := syscalltrace.Groups(out, syscalltrace.GroupAuto, nil)
	var leakGroup *syscalltrace.Group
	for i := range groups {
		for _, f := range groups[i].Frames {
			if f.Func == "leak_buffer" {
				leakGroup = &groups[i]
			}
		}
	}
	if leakGroup == nil || leakGroup.Count != 50 || leakGroup.Bytes != 50<<20 {
		t.Fatalf("leak_buffer group: %+v, want 50 mappings, 50 MiB", leakGroup)
	}
	if groups[0].Key != leakGroup.Key {
		t.Errorf("largest group is %q, want the leak", groups[0].Key)
	}

	prof := filepath.Join(dir, "leaks.pb.gz")
	f, err := os.Create(prof)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscalltrace.WriteProfile(f, out, nil); err != nil {
		t.Fatal(err)
	}
	f.Close()
	pf, _ := os.Open(prof)
	p, err := profile.Parse(pf)
	pf.Close()
	if err != nil {
		t.Fatalf("profile does not parse back: %v", err)
	}
	var leakBytes int64
	for _, s := range p.Sample {
		for _, l := range s.Location {
			if l.Line[0].Function.Name == "leak_buffer" {
				leakBytes += s.Value[1]
				break
			}
		}
	}
	if leakBytes != 50<<20 {
		t.Errorf("profile attributes %d B to leak_buffer, want %d", leakBytes, 50<<20)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Logf("go tool not in PATH (%v): profile checked with the profile package only", err)
		return
	}
	top, err := exec.Command(goBin, "tool", "pprof", "-top", "-sample_index=outstanding", "-focus=leak_buffer", prof).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof: %v\n%s", err, top)
	}
	if !strings.Contains(string(top), "leak_buffer") || !strings.Contains(string(top), fmt.Sprintf("%dMB", 50)) && !strings.Contains(string(top), "52.43MB") {
		t.Errorf("go tool pprof -top does not show 50 MiB under leak_buffer:\n%s", top)
	}
}

// TestPerfTraceLeakerLive traces leaker with perf trace --call-graph where
// the kernel allows it.
func TestPerfTraceLeakerLive(t *testing.T) {
	perfBin, err := exec.LookPath("perf")
	if err != nil {
		t.Skipf("perf not found (%v); .ci/run installs linux-perf", err)
	}
	if out, err := exec.Command(perfBin, "trace", "-e", "mmap", "true").CombinedOutput(); err != nil {
		t.Skipf("perf trace is not permitted here (%v): %s", err, strings.TrimSpace(string(out)))
	}
	bin := testprog.Build(t, "leaker", "-g", "-fno-omit-frame-pointer")
	trace := filepath.Join(t.TempDir(), "leaker.perf")
	// On one CPU: perf writes each CPU's buffer in turn and its times and
	// durations include tracing overhead, so with threads truly running in
	// parallel the order of a munmap and the mmap that reuses its range can
	// be ambiguous. Concurrency is covered by the strace tests, whose single
	// output stream orders every call.
	args := []string{perfBin, "trace", "-m", "4096", "-e", "mmap,munmap,mremap,brk,madvise", "--call-graph", "dwarf", "-o", trace, bin, "50", "20"}
	if taskset, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{taskset, "-c", "0"}, args...)
	} else {
		t.Skipf("taskset not found (%v): cannot pin the traced program to one CPU", err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	stdout, err := cmd.Output()
	if err != nil {
		t.Skipf("perf trace failed here: %v", err)
	}
	r, inputs := replayPaths(t, trace)
	if lost := inputs[0].Lost(); lost > 0 {
		t.Skipf("perf lost %d events on this machine; an exact replay is impossible", lost)
	}
	checkOutstanding(t, r, readTruth(t, stdout), true)
}

// TestCompressedInputs reads the same capture gzip- and zstd-compressed.
func TestCompressedInputs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "fixtures", "traces", "leaker-f-tt-T.strace"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	zpath := filepath.Join(dir, "trace.zst")
	f, err := os.Create(zpath)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(raw)
	zw.Close()
	f.Close()
	plain, _ := replayPaths(t, filepath.Join("..", "fixtures", "traces", "leaker-f-tt-T.strace"))
	for _, p := range []string{zpath, filepath.Join("..", "fixtures", "traces", "leaker-f-tt-T.strace.gz")} {
		r, inputs := replayPaths(t, p)
		if inputs[0].Format != syscalltrace.FormatStrace || r.Stats.Events != plain.Stats.Events || len(r.Outstanding()) != len(plain.Outstanding()) {
			t.Errorf("%s: %s, %d events, %d outstanding; plain: %d, %d", p, inputs[0].Format, r.Stats.Events, len(r.Outstanding()), plain.Stats.Events, len(plain.Outstanding()))
		}
	}
}
