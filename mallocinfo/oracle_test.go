package mallocinfo_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/gdbtest"
	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/mallocinfo"
)

// mallinfo2 is the oracle line mallocdemo prints: key=value pairs.
func mallinfo2(t *testing.T, lines []string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "mallinfo2":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					t.Fatalf("bad mallinfo2 field %q", kv)
				}
				m[k] = n
			}
		case "freed":
			n, _ := strconv.ParseUint(fields[1], 10, 64)
			m["freed"] = n
		}
	}
	if _, ok := m["arena"]; !ok {
		t.Fatalf("no mallinfo2 line in %q", lines)
	}
	return m
}

func lastSnapshot(t *testing.T, path string) (*mallocinfo.Snapshot, int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last *mallocinfo.Info
	n := 0
	if err := mallocinfo.Scan(f, path, func(i *mallocinfo.Info) error { last = i; n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return mallocinfo.Analyze(last), n
}

// checkOracle compares memdiag's totals with mallinfo2() taken at the same
// instant: arena = Σ current, fordblks = Σ free, uordblks = Σ in use,
// hblkhd = mmapped bytes, keepcost = the main arena's top chunk.
func checkOracle(t *testing.T, s *mallocinfo.Snapshot, mi map[string]uint64) {
	t.Helper()
	tot := s.Totals
	var mainTop uint64
	for _, a := range s.Arenas {
		if a.Main {
			mainTop = a.TopBytes
		}
	}
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"Σ system current vs arena", tot.SystemCurrentBytes, mi["arena"]},
		{"Σ free vs fordblks", tot.FreeBytes, mi["fordblks"]},
		{"Σ in use vs uordblks", tot.InUseBytes, mi["uordblks"]},
		{"mmap bytes vs hblkhd", tot.MmapBytes, mi["hblkhd"]},
		{"mmap count vs hblks", tot.MmapCount, mi["hblks"]},
		{"main top vs keepcost", mainTop, mi["keepcost"]},
	} {
		// Exact: malloc_info's one byte per binned chunk (its PREV_INUSE
		// bit) is taken out (Bin.Bytes).
		if c.got != c.want {
			t.Errorf("%s: memdiag %d, mallinfo2 %d", c.name, c.got, c.want)
		}
	}
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}

// TestFixturesAgreeWithMallinfo2 checks every captured document in
// fixtures/mallocinfo against the mallinfo2() line captured with it.
func TestFixturesAgreeWithMallinfo2(t *testing.T) {
	files, _ := filepath.Glob("../fixtures/mallocinfo/*.mallinfo2")
	if len(files) < 5 {
		t.Fatalf("expected the mallocdemo captures in fixtures/mallocinfo, found %d", len(files))
	}
	for _, oracle := range files {
		name := strings.TrimSuffix(oracle, ".mallinfo2")
		t.Run(filepath.Base(name), func(t *testing.T) {
			b, err := os.ReadFile(oracle)
			if err != nil {
				t.Fatal(err)
			}
			doc := name + ".xml"
			if _, err := os.Stat(doc); err != nil {
				doc = name + ".log"
			}
			s, n := lastSnapshot(t, doc)
			mi := mallinfo2(t, strings.Split(string(b), "\n"))
			checkOracle(t, s, mi)
			if freed, ok := mi["freed"]; ok {
				// The story-1 shape: what the other thread freed is retained.
				if d := diff(s.Totals.RetainedFreeBytes, freed); float64(d) > 0.02*float64(freed) {
					t.Errorf("retained %d B, program freed %d B: more than 2 %% apart", s.Totals.RetainedFreeBytes, freed)
				}
			}
			if filepath.Base(name) == "arenas" && s.Totals.Arenas < 60 {
				t.Errorf("arenas fixture lists %d arenas, want 60+", s.Totals.Arenas)
			}
			if filepath.Base(name) == "rounds" && n != 5 {
				t.Errorf("rounds log holds %d documents, want 5", n)
			}
		})
	}
}

func TestFindingsOnRealShapes(t *testing.T) {
	th := mallocinfo.DefaultThresholds(2)
	story, _ := lastSnapshot(t, "../fixtures/mallocinfo/story1.xml")
	fs := mallocinfo.Findings(story, th, "story1.xml")
	if len(fs) == 0 || fs[0].ID != "arena-retention" || fs[0].Severity != "high" {
		t.Fatalf("story 1: findings %+v, want arena-retention (high) first", fs)
	}
	if !strings.Contains(fs[0].Summary, "arena 2 ≥90 % free") {
		t.Errorf("summary %q does not name the retaining arena", fs[0].Summary)
	}
	churn, _ := lastSnapshot(t, "../fixtures/mallocinfo/churn.xml")
	if fs := mallocinfo.Findings(churn, th, "churn.xml"); len(fs) != 0 {
		t.Errorf("healthy churn: findings %+v, want none", fs)
	}
	many, _ := lastSnapshot(t, "../fixtures/mallocinfo/arenas.xml")
	fs = mallocinfo.Findings(many, th, "arenas.xml")
	if len(fs) != 1 || fs[0].ID != "arena-count" {
		t.Errorf("65 arenas on 2 cores: findings %+v, want arena-count", fs)
	}
}

func TestSeriesOnRoundsLog(t *testing.T) {
	f, err := os.Open("../fixtures/mallocinfo/rounds.log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	se := mallocinfo.NewSeries()
	if err := mallocinfo.Scan(f, "rounds.log", func(i *mallocinfo.Info) error { se.Add(mallocinfo.Analyze(i)); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, st := range se.Steps[1:4] {
		if len(st.NewArenas) != 2 || st.GrewMost < 0 || st.GrewMostBytes < 32<<20 {
			t.Errorf("round %d: new arenas %v, grew most arena %d by %d; want 2 new, one grown by 32 MiB", i+1, st.NewArenas, st.GrewMost, st.GrewMostBytes)
		}
	}
	fs := se.Findings(mallocinfo.DefaultThresholds(2), "rounds.log")
	if len(fs) != 1 || fs[0].ID != "arena-steps" || !strings.Contains(fs[0].Summary, "arenas 2, 4 and 6") {
		t.Errorf("findings %+v, want arena-steps naming arenas 2, 4 and 6", fs)
	}
}

// TestCaptureLive runs the story-1 reproduction and captures malloc_info
// both ways — read from the process's memory, and asked of the process
// through gdb: the retaining arena and bytes must come out, the process
// must be left running, with no mapping of the capture's left behind. (The
// capture names no file at all: see the attacker's tests in cmd.)
func TestCaptureLive(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo")
	for name, c := range map[string]mallocinfo.Capturer{"memory": {}, "memory-no-stop": {NoStop: true}, "gdb": {UseGDB: true}} {
		t.Run(name, func(t *testing.T) {
			if _, err := exec.LookPath("gdb"); err != nil && c.UseGDB {
				t.Skipf("gdb not found (%v); .ci/run installs it", err)
			}
			proc := testprog.Start(t, bin, "story1", filepath.Join(t.TempDir(), "self.xml"))
			mi := mallinfo2(t, proc.Lines)
			mapsBefore := countMaps(t, proc.PID())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			info, err := c.Capture(ctx, proc.PID())
			if c.UseGDB && gdbtest.Refused(t, err, proc.PID()) {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			s := mallocinfo.Analyze(info)
			if d := diff(s.Totals.RetainedFreeBytes, mi["freed"]); float64(d) > 0.02*float64(mi["freed"]) {
				t.Errorf("retained %d B, program freed %d B", s.Totals.RetainedFreeBytes, mi["freed"])
			}
			// gdb's own calls (fopen's FILE, its strings) land in the main
			// arena; a read of the memory changes nothing, so there the
			// totals are mallinfo2's to the byte.
			if s.Totals.MmapBytes != mi["hblkhd"] {
				t.Errorf("mmap bytes %d, mallinfo2 hblkhd %d", s.Totals.MmapBytes, mi["hblkhd"])
			}
			if !c.UseGDB && (s.Totals.SystemCurrentBytes != mi["arena"] || s.Totals.FreeBytes != mi["fordblks"]) {
				t.Errorf("read from memory: system %d free %d, mallinfo2 arena %d fordblks %d", s.Totals.SystemCurrentBytes, s.Totals.FreeBytes, mi["arena"], mi["fordblks"])
			}
			fs := mallocinfo.Findings(s, mallocinfo.DefaultThresholds(2), "live")
			if len(fs) == 0 || fs[0].ID != "arena-retention" {
				t.Errorf("findings %+v, want arena-retention", fs)
			}
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", proc.PID()))
			if i := strings.LastIndexByte(string(stat), ')'); i < 0 || stat[i+2] == 't' || stat[i+2] == 'T' {
				t.Errorf("target left stopped: %s", stat)
			}
			if after := countMaps(t, proc.PID()); after != mapsBefore {
				t.Errorf("%d mappings before the capture, %d after: its buffer was not unmapped", mapsBefore, after)
			}
		})
	}
}

func countMaps(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestCaptureErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("no such process", func(t *testing.T) {
		for _, c := range []mallocinfo.Capturer{{}, {UseGDB: true}} {
			_, err := c.Capture(ctx, 1<<30)
			if !errors.Is(err, mallocinfo.ErrNoProcess) || !strings.Contains(err.Error(), "no such process") {
				t.Errorf("%s: got %v", c.Source(1<<30), err)
			}
		}
	})
	t.Run("gdb missing", func(t *testing.T) {
		proc := testprog.Start(t, testprog.Build(t, "mallocdemo"), "single", filepath.Join(t.TempDir(), "x.xml"))
		t.Setenv("PATH", t.TempDir())
		if _, err := (mallocinfo.Capturer{}).Capture(ctx, proc.PID()); err != nil {
			t.Errorf("reading the memory needs no gdb, got %v", err)
		}
		_, err := mallocinfo.Capturer{UseGDB: true}.Capture(ctx, proc.PID())
		if err == nil || !strings.Contains(err.Error(), "gdb not found") || !strings.Contains(err.Error(), "apt-get install gdb") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("a Go program", func(t *testing.T) {
		_, err := mallocinfo.Capturer{UseGDB: true}.Capture(ctx, os.Getpid())
		if !errors.Is(err, mallocinfo.ErrGoProgram) || !strings.Contains(err.Error(), "goroutine's stack") {
			t.Errorf("got %v", err)
		}
	})
	t.Run("already traced", func(t *testing.T) {
		strace, err := exec.LookPath("strace")
		if err != nil {
			t.Skipf("strace not found (%v): no second tracer to hold the target", err)
		}
		proc := testprog.Start(t, testprog.Build(t, "mallocdemo"), "single", filepath.Join(t.TempDir(), "x.xml"))
		tracer := exec.Command(strace, "-qq", "-e", "trace=none", "-p", strconv.Itoa(proc.PID()))
		if err := tracer.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tracer.Process.Kill(); _ = tracer.Wait() }()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(readStatus(t, proc.PID()), "TracerPid:\t"+strconv.Itoa(tracer.Process.Pid)) {
			if time.Now().After(deadline) {
				t.Fatal("strace did not attach within 5 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		want := fmt.Sprintf("already traced by process %d (strace)", tracer.Process.Pid)
		for _, c := range []mallocinfo.Capturer{{}, {UseGDB: true}} {
			_, err = c.Capture(ctx, proc.PID())
			if !errors.Is(err, mallocinfo.ErrNoPtrace) || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: got %v, want %q", c.Source(proc.PID()), err, want)
			}
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		if _, err := exec.LookPath("gdb"); err != nil {
			t.Skipf("gdb not found (%v)", err)
		}
		proc := testprog.Start(t, testprog.Build(t, "mallocdemo"), "single", filepath.Join(t.TempDir(), "x.xml"))
		// gdb proven first, so that the interruption meets gdb at work in
		// the target, not in the canary.
		c := mallocinfo.Capturer{UseGDB: true, Canary: &gdbinject.Canary{}}
		_, err := c.Capture(ctx, proc.PID())
		unsafe := errors.Is(err, mallocinfo.ErrUnsafeHost)
		if unsafe {
			t.Logf("this host's gdb fails the canary: nothing reaches the target to interrupt (%v)", err)
		}
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(150*time.Millisecond, cancel) // as Ctrl-C would, while gdb works
		_, err = c.Capture(ctx, proc.PID())
		switch {
		case unsafe && !errors.Is(err, mallocinfo.ErrUnsafeHost):
			t.Errorf("got %v, want the canary's verdict kept", err)
		case unsafe:
		case err == nil:
			t.Skip("the capture finished within 150 ms: nothing to interrupt")
		case !strings.Contains(err.Error(), "interrupted") || strings.Contains(err.Error(), "timed out"):
			t.Errorf("got %v, want it to say interrupted", err)
		}
		for _, field := range []string{"State:\tS", "TracerPid:\t0"} {
			if st := readStatus(t, proc.PID()); !strings.Contains(st, field) {
				t.Errorf("after the interrupted capture the target's status lacks %q:\n%s", field, st)
			}
		}
	})
	t.Run("statically linked", func(t *testing.T) {
		bin := testprog.Build(t, "mallocdemo", "-static")
		proc := testprog.Start(t, bin, "single", filepath.Join(t.TempDir(), "x.xml"))
		for _, c := range []mallocinfo.Capturer{{}, {UseGDB: true}} {
			_, err := c.Capture(ctx, proc.PID())
			if !errors.Is(err, mallocinfo.ErrNotGlibc) || !strings.Contains(err.Error(), "statically linked") {
				t.Errorf("%s: got %v", c.Source(proc.PID()), err)
			}
		}
	})
}

// TestProgramsAgreeWithMallinfo2 compiles mallocdemo now and checks each of
// its shapes on this machine's glibc, not only the captured fixtures.
func TestProgramsAgreeWithMallinfo2(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo")
	for _, mode := range []string{"story1", "churn", "single", "fastbins", "rounds", "arenas", "histogram"} {
		t.Run(mode, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), mode+".xml")
			cmd := exec.Command(bin, mode, out)
			if mode == "arenas" {
				cmd.Env = append(os.Environ(), "MALLOC_ARENA_MAX=128")
			}
			cmd.Stdin = strings.NewReader("")
			stdout, err := cmd.Output()
			if err != nil {
				t.Fatalf("mallocdemo %s: %v", mode, err)
			}
			s, _ := lastSnapshot(t, out)
			mi := mallinfo2(t, strings.Split(string(stdout), "\n"))
			checkOracle(t, s, mi)
			if freed, ok := mi["freed"]; ok {
				if d := diff(s.Totals.RetainedFreeBytes, freed); float64(d) > 0.02*float64(freed) {
					t.Errorf("retained %d B, program freed %d B", s.Totals.RetainedFreeBytes, freed)
				}
			}
		})
	}
}

func readStatus(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestElidedHistogramStory1 reads story 1's third-round document in the
// shape it was published: per-arena totals, size histograms elided.
// Without the histograms every free byte looked like top chunk (6 GiB of
// "top", findings: none). glibc's invariant — a non-main arena's top lies
// in one heap of at most 64 MiB — bounds top, so arenas 15 and 27 are found
// almost all free, and the missing histogram is said.
func TestElidedHistogramStory1(t *testing.T) {
	arena := func(nr int, current, fast, rest, restCount uint64) string {
		return fmt.Sprintf(`<heap nr="%d">
<sizes>
</sizes>
<total type="fast" count="0" size="%d"/>
<total type="rest" count="%d" size="%d"/>
<system type="current" size="%d"/>
<system type="max" size="%d"/>
<aspace type="total" size="%d"/>
<aspace type="mprotect" size="%d"/>
</heap>
`, nr, fast, restCount, rest, current, current, current, current)
	}
	doc := `<malloc version="1">
` + arena(6, 6_400_000_000, 6_000_000, 22_000_000, 812) +
		arena(15, 6_450_000_000, 6_000_000, 6_430_000_000, 57_568) +
		arena(27, 6_450_000_000, 6_000_000, 6_430_000_000, 57_568) + `<total type="fast" count="0" size="18000000"/>
<total type="rest" count="115948" size="12882000000"/>
<total type="mmap" count="0" size="0"/>
<system type="current" size="19300000000"/>
<system type="max" size="19300000000"/>
<aspace type="total" size="19300000000"/>
<aspace type="mprotect" size="19300000000"/>
</malloc>
`
	info, err := mallocinfo.Parse(strings.NewReader(doc), "story 1, round 3 as published")
	if err != nil {
		t.Fatal(err)
	}
	s := mallocinfo.Analyze(info)
	for _, a := range s.Arenas {
		if !a.Main && a.TopBytes > 64<<20 {
			t.Errorf("arena %d: top %d B, more than a heap can hold", a.Nr, a.TopBytes)
		}
		if (a.Nr == 15 || a.Nr == 27) && a.RetainedFreeBytes < 6_350_000_000 {
			t.Errorf("arena %d: retained %d B of its %d B free", a.Nr, a.RetainedFreeBytes, a.FreeBytes())
		}
	}
	if w := strings.Join(s.Warnings, "\n"); !strings.Contains(w, "arena 15: the size histogram is missing") || !strings.Contains(w, "arena 27") {
		t.Errorf("warnings %q do not say the histogram is missing", w)
	}
	fs := mallocinfo.Findings(s, mallocinfo.DefaultThresholds(0), "round 3")
	if len(fs) == 0 || fs[0].ID != "arena-retention" || !strings.Contains(fs[0].Summary, "arenas 15 and 27") {
		t.Errorf("findings %+v, want arena-retention naming arenas 15 and 27", fs)
	}
}
