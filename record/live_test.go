//go:build linux && amd64

package record

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/syscalltrace"
)

// needBPF skips, saying why, where recording cannot run.
func needBPF(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrNoBTF) || errors.Is(err, ErrUnsupported) {
		t.Skipf("the kernel refuses recording here: %v", err)
	}
}

// runHeld records bin started held, until it prints "done".
func runHeld(t *testing.T, o Options, bin string, args ...string) (*Result, []string) {
	t.Helper()
	return runHeldWith(t, o, nil, bin, args...)
}

// runHeldWith is runHeld, handing the program's stdin to withStdin first.
func runHeldWith(t *testing.T, o Options, withStdin func(io.Writer), bin string, args ...string) (*Result, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("memdiag record needs root (CAP_BPF, CAP_PERFMON); not root")
	}
	cmd, stdin, stdout, h := startHeldPiped(t, bin, args...)
	if withStdin != nil {
		withStdin(stdin)
	}
	t.Cleanup(func() { h.Close(); stdin.Close(); _ = cmd.Wait() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if sc.Text() == "done" {
				cancel()
				return
			}
		}
	}()
	o.PID = cmd.Process.Pid
	o.Ready = h.Release
	// The program ends the recording; the bound only keeps a broken test
	// from hanging.
	o.Duration = 5 * time.Minute
	res, err := Record(ctx, o)
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if left := bpfDescriptors(t); len(left) > 0 {
		t.Errorf("probes left attached after Record returned: %v", left)
	}
	return res, lines
}

// startHeldPiped starts bin held (StartHeld), its stdin and stdout piped
// to the test.
func startHeldPiped(t *testing.T, bin string, args ...string) (*exec.Cmd, io.WriteCloser, io.Reader, *Held) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	h, err := StartHeld(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, stdin, stdout, h
}

// bpfDescriptors lists this process's descriptors of BPF objects and perf
// events (each uprobe is one): none may outlive a recording.
func bpfDescriptors(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && (strings.Contains(target, "perf_event") || strings.Contains(target, "bpf")) {
			out = append(out, e.Name()+" → "+target)
		}
	}
	return out
}

func TestRecordKeeperAndChurner(t *testing.T) {
	bin := testprog.Build(t, "keepchurn", "-fno-omit-frame-pointer")
	// 200,000 pairs rather than the 2 M of the benchmark: every call traps
	// into the kernel (tens of µs each on a loaded virtual machine).
	const keep, churn = 3000, 200000
	res, lines := runHeld(t, Options{}, bin, strconv.Itoa(keep), strconv.Itoa(churn))
	truth := uint64(keep * 10240)
	t.Logf("%s", strings.Join(lines, "; "))
	t.Logf("counts %+v", res.Counts)
	for i, s := range res.Stacks {
		if i == 5 {
			break
		}
		t.Logf("stack %d: out %d B / %d, alloc %d B / %d, %s: %v", s.ID, s.OutstandingBytes, s.OutstandingCount, s.AllocBytes, s.AllocCount, s.Unwound, s.Frames)
	}
	if len(res.Stacks) == 0 {
		t.Fatal("no stacks recorded")
	}
	// The program waits for stdin after "done": the recording was stopped.
	if res.Exited || res.Comm != "keepchurn" {
		t.Errorf("result of process %q, exited %v; want keepchurn, still running", res.Comm, res.Exited)
	}
	checkProfile(t, res, truth)
	top := res.Stacks[0]
	if len(top.Frames) == 0 || top.Frames[0].Func != "keeper" {
		t.Fatalf("leading stack %v (%s), want keeper's", top.Frames, top.Unwound)
	}
	if d := float64(top.OutstandingBytes) - float64(truth); d > 0.02*float64(truth) || d < -0.02*float64(truth) {
		t.Errorf("keeper holds %d B, truth %d B (more than 2%% off)", top.OutstandingBytes, truth)
	}
	if lost := res.Counts.Lost(); lost == 0 {
		for _, s := range res.Stacks {
			if len(s.Frames) > 0 && s.Frames[0].Func == "churner" {
				if s.OutstandingBytes > 64*16 {
					t.Errorf("churner holds %d B, want almost nothing", s.OutstandingBytes)
				}
				if s.AllocCount < churn/2 {
					t.Errorf("churner's allocations: %d recorded, want about %d", s.AllocCount, churn)
				}
			}
		}
	}
}

// checkProfile writes res as pprof and reads it back: inuse_space at
// keeper's stack is the truth.
func checkProfile(t *testing.T, res *Result, truth uint64) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "heap.pb.gz")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteProfile(f, res); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rf, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	p, err := profile.Parse(rf)
	if err != nil {
		t.Fatalf("the profile does not parse: %v", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "inuse_space" {
			idx = i
		}
	}
	if idx < 0 {
		t.Fatalf("no inuse_space in %v", p.SampleType)
	}
	var keeper int64
	for _, s := range p.Sample {
		if len(s.Location) > 0 && s.Location[0].Line[0].Function.Name == "keeper" {
			keeper += s.Value[idx]
		}
	}
	if uint64(keeper) != res.Stacks[0].OutstandingBytes || keeper < int64(truth)*98/100 {
		t.Errorf("profile: keeper's inuse_space %d, result %d, truth %d", keeper, res.Stacks[0].OutstandingBytes, truth)
	}
}

// TestRecordStartupMappingsMatchStrace runs one program twice with
// address-space randomisation off (setarch -R): under memdiag record --
// and under strace -f -k, replayed as memdiag trace replays it. The
// mappings its image made and left must cover the same ranges.
func TestRecordStartupMappingsMatchStrace(t *testing.T) {
	straceBin, err := exec.LookPath("strace")
	if err != nil {
		t.Skipf("strace not found (%v); .ci/run installs it", err)
	}
	setarch, err := exec.LookPath("setarch")
	if err != nil {
		t.Skipf("setarch not found (%v): cannot turn address randomisation off", err)
	}
	bin := testprog.Build(t, "startmaps")
	res, _ := runHeld(t, Options{}, setarch, "-R", bin)
	got := coverage(finalImage(res.Outstanding))

	trace := filepath.Join(t.TempDir(), "startmaps.strace")
	if out, err := exec.Command(straceBin, "-f", "-k", "-o", trace, "-e", "trace=memory,execve", setarch, "-R", bin).CombinedOutput(); err != nil {
		t.Skipf("strace could not run the program here (%v): %s", err, out)
	}
	tf, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	in, err := syscalltrace.OpenFile(trace, tf, syscalltrace.FormatAuto, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	replay := syscalltrace.NewReplay(true)
	if err := replay.ApplyAll(in); err != nil {
		t.Fatal(err)
	}
	want := coverage(finalImage(replay.Outstanding()))
	if len(want) == 0 {
		t.Fatal("strace's replay has no outstanding mappings")
	}
	t.Logf("%d ranges outstanding in both: %v", len(want), want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("outstanding ranges differ\nrecord:\n  %s\nstrace:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	// The kept 1 MiB mapping and the grown 8 MiB one are among them.
	var sizes []uint64
	for _, m := range finalImage(res.Outstanding) {
		if m.Anonymous {
			sizes = append(sizes, m.Len())
		}
	}
	for _, want := range []uint64{1 << 20, 8 << 20} {
		found := false
		for _, n := range sizes {
			found = found || n == want
		}
		if !found {
			t.Errorf("no outstanding anonymous mapping of %d B recorded (have %v)", want, sizes)
		}
	}
}

// finalImage drops the mappings of images that exec'd away.
func finalImage(ms []*syscalltrace.Mapping) []*syscalltrace.Mapping {
	var out []*syscalltrace.Mapping
	for _, m := range ms {
		if m.EndedBy != "exec" {
			out = append(out, m)
		}
	}
	return out
}

// coverage merges mappings into the ranges they cover: mprotect, which
// strace sees and record does not trace, splits mappings but not ranges.
func coverage(ms []*syscalltrace.Mapping) []string {
	sort.Slice(ms, func(i, j int) bool { return ms[i].Start < ms[j].Start })
	var out []string
	var lo, hi uint64
	flush := func() {
		if hi > lo {
			out = append(out, strconv.FormatUint(lo, 16)+"-"+strconv.FormatUint(hi, 16))
		}
	}
	for _, m := range ms {
		if m.Start > hi || hi == 0 {
			flush()
			lo, hi = m.Start, m.End
			continue
		}
		hi = max(hi, m.End)
	}
	flush()
	return out
}

// TestRecordSampledCappedAndSmall: sampling estimates keeper's bytes
// (about 435 of its 3000 allocations sampled at 64 KiB: within 20 % is
// over four standard deviations); --min-size leaves the churner's 64 B
// unrecorded in the kernel; a cap of 1000 summarises the oldest and still
// counts them as outstanding.
func TestRecordSampledCappedAndSmall(t *testing.T) {
	bin := testprog.Build(t, "keepchurn", "-fno-omit-frame-pointer")
	const truth = 3000 * 10240
	keeper := func(res *Result) Stack {
		for _, s := range res.Stacks {
			if len(s.Frames) > 0 && s.Frames[0].Func == "keeper" {
				return s
			}
		}
		t.Fatalf("no keeper stack in %d stacks: %+v (counts %+v)", len(res.Stacks), res.Stacks, res.Counts)
		return Stack{}
	}
	t.Run("sampled", func(t *testing.T) {
		res, _ := runHeld(t, Options{SampleBytes: 64 << 10}, bin, "3000", "20000")
		k := keeper(res)
		if d := math.Abs(float64(k.OutstandingBytes) - truth); d > 0.2*truth {
			t.Errorf("sampled estimate of keeper %d B, truth %d B", k.OutstandingBytes, truth)
		}
		if res.Counts.SkippedSample == 0 || res.Counts.Allocs > 3000 {
			t.Errorf("sampling recorded %d, skipped %d", res.Counts.Allocs, res.Counts.SkippedSample)
		}
	})
	t.Run("min-size", func(t *testing.T) {
		res, _ := runHeld(t, Options{MinSize: 1024}, bin, "3000", "20000")
		if k := keeper(res); k.OutstandingBytes != truth {
			t.Errorf("keeper %d B, truth %d B", k.OutstandingBytes, truth)
		}
		if res.Counts.SkippedSmall < 20000 {
			t.Errorf("%d small allocations skipped, want the churner's 20000", res.Counts.SkippedSmall)
		}
	})
	t.Run("capped", func(t *testing.T) {
		res, _ := runHeld(t, Options{MaxOutstanding: 1000}, bin, "3000", "1000")
		k := keeper(res)
		if k.OutstandingBytes != truth || k.SummarisedCount < 2000 || res.Counts.Summarised < 2000 {
			t.Errorf("keeper %d B (%d summarised), truth %d B", k.OutstandingBytes, k.SummarisedCount, truth)
		}
	})
}

// TestRecordPreloadedAllocators: with jemalloc or tcmalloc preloaded the
// program's malloc is theirs; their file is probed beside libc and the
// keeper still leads with its bytes.
func TestRecordPreloadedAllocators(t *testing.T) {
	bin := testprog.Build(t, "keepchurn", "-fno-omit-frame-pointer")
	for name, lib := range map[string]string{
		"jemalloc": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2",
		"tcmalloc": "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(lib); err != nil {
				t.Skipf("%s not installed (%v); .ci/run installs it", lib, err)
			}
			t.Setenv("LD_PRELOAD", lib)
			res, _ := runHeld(t, Options{}, bin, "3000", "1000")
			probed := false
			for _, p := range res.Probes {
				probed = probed || strings.Contains(p.Path, "lib"+name) && len(p.Functions) > 0
			}
			if !probed {
				t.Errorf("%s not probed: %+v", name, res.Probes)
			}
			if len(res.Stacks) == 0 || len(res.Stacks[0].Frames) == 0 || res.Stacks[0].Frames[0].Func != "keeper" || res.Stacks[0].OutstandingBytes != 3000*10240 {
				t.Errorf("leading stack %+v", res.Stacks[:min(len(res.Stacks), 1)])
			}
		})
	}
}

// TestRecordInterval: snapshots arrive while the process runs (drip
// allocates until told to stop; the recording lasts a second).
func TestRecordInterval(t *testing.T) {
	testprog.NeedRoot(t)
	p := testprog.Start(t, testprog.Build(t, "drip", "-fno-omit-frame-pointer"), "100000")
	var snaps []*Result
	res, err := Record(context.Background(), Options{PID: p.PID(), Duration: time.Second, NoMappings: true,
		Interval: 200 * time.Millisecond, OnInterval: func(r *Result) { snaps = append(snaps, r) }})
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) < 2 {
		t.Fatalf("%d snapshots in a second at 200 ms", len(snaps))
	}
	if snaps[0].Final || !res.Final || snaps[len(snaps)-1].Counts.Allocs > res.Counts.Allocs {
		t.Errorf("snapshots: first final %v, result final %v", snaps[0].Final, res.Final)
	}
}

// TestRecordOtherUsersProcess: root recording a process of nobody's — the
// allocator's files are opened through the process's own view and checked
// by inode, and its stacks are named.
func TestRecordOtherUsersProcess(t *testing.T) {
	testprog.NeedRoot(t)
	p := testprog.StartWith(t, testprog.Options{AsNobody: true}, testprog.BuildPublic(t, "drip", "-fno-omit-frame-pointer"), "100000")
	res, err := Record(context.Background(), Options{PID: p.PID(), Duration: time.Second, NoMappings: true})
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stacks) == 0 || len(res.Stacks[0].Frames) == 0 || res.Stacks[0].Frames[0].Func != "drip_keeper" || res.Stacks[0].OutstandingCount < 10 {
		t.Errorf("leading stack %+v, want drip_keeper's with ≥ 10 allocations in a second", res.Stacks[:min(1, len(res.Stacks))])
	}
	if left := bpfDescriptors(t); len(left) > 0 {
		t.Errorf("probes left attached: %v", left)
	}
}
