package proctop

import (
	"fmt"
	"github.com/memdiag/memdiag/internal/proc"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestHostOfProcesses is issue 14's bar for top: 200 processes, three with
// known glibc arenas (arenas.c: 3 threads × 8 MiB, one 64 MiB heap each)
// and a JVM. Every one is listed with its RSS (within a page of statm read
// just after), the arenas counted from the maps' geometry, the JVM tagged.
func TestHostOfProcesses(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep(1): %v", err)
	}
	var sleepers []int
	for i := 0; i < 200; i++ {
		c := exec.Command(sleep, "600")
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		sleepers = append(sleepers, c.Process.Pid)
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	bin := testprog.Build(t, "arenas")
	var arenaPIDs []int
	for i := 0; i < 3; i++ {
		arenaPIDs = append(arenaPIDs, testprog.Start(t, bin, "3", "8").PID())
	}
	jvm := 0
	if _, err := exec.LookPath("java"); err == nil {
		jvm = testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: []string{"-Xmx64m"}, Args: []string{"8", "0", "0", filepath.Join(t.TempDir(), "m")}}).PID()
	} else {
		t.Logf("java not found (%v): the JVM tag is not checked", err)
	}

	s, err := Read(Options{Top: 100000, Budget: time.Minute, RollupBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	by := map[int]*Process{}
	for _, p := range s.Processes {
		by[p.PID] = p
	}
	for _, pid := range sleepers {
		p := by[pid]
		if p == nil {
			t.Fatalf("sleeper %d not listed (%d processes, %d exited)", pid, len(s.Processes), s.Exited)
		}
		statm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(statm))
		pages, _ := strconv.ParseUint(f[1], 10, 64)
		if d := int64(p.RSSBytes) - int64(pages*4096); d > 4096 || d < -4096 {
			t.Errorf("sleeper %d: RSS %d, statm %d pages", pid, p.RSSBytes, pages)
		}
		if p.Rollup == nil || p.Rollup.PSS == 0 || p.Rollup.USS > p.RSSBytes || p.Diagnosis == nil || p.Diagnosis.ArenaHeaps != 0 || p.Diagnosis.JVM {
			t.Errorf("sleeper %d: %+v rollup %+v diagnosis %+v", pid, p, p.Rollup, p.Diagnosis)
		}
	}
	for _, pid := range arenaPIDs {
		if d := by[pid].Diagnosis; d == nil || d.ArenaHeaps != 3 || d.ArenaCommittedBytes < 3*8<<20 || d.Allocator != "glibc" ||
			d.MallocArenaBytes == nil || *d.MallocArenaBytes < 3*8<<20 || d.MallocFreeBytes == nil || *d.MallocFreeBytes > *d.MallocArenaBytes {
			t.Errorf("arenas %d: diagnosis %+v, want 3 heaps with ≥ 24 MiB committed, read from its memory too", pid, d)
		}
	}
	if jvm != 0 {
		if d := by[jvm].Diagnosis; d == nil || !d.JVM {
			t.Errorf("JVM %d: diagnosis %+v", jvm, d)
		}
	}
	// Over the cap, smaps_rollup is not read, and the row says why.
	s, err = Read(Options{RSSCap: 1, Top: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Processes[0]; p.Rollup != nil || !strings.Contains(p.Skipped, "RSS") || !strings.Contains(p.Skipped, "--deep") || s.RollupSkipped < 200 {
		t.Errorf("over the cap: %+v (skipped %d)", p, s.RollupSkipped)
	}
}

// TestTopCyclesWithAHangingExecutable plays the user who serves a FUSE
// mount and stalls it: the executable of a process of nobody's hangs on
// open (the opener is made to block for that process only). Over ten
// cycles of top, as --textfile runs them, one probe is left hanging, not
// one a cycle, and the process's diagnosis says it was skipped.
func TestTopCyclesWithAHangingExecutable(t *testing.T) {
	testprog.NeedRoot(t)
	c := exec.Command("sleep", "600")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	hung := "/proc/" + strconv.Itoa(c.Process.Pid) + "/exe"
	release := make(chan struct{})
	defer close(release)
	prober := elfinfo.NewProber(func(path string) (elfinfo.File, error) {
		if path == hung {
			<-release
		}
		return os.Open(path)
	})
	o := Options{Top: 100000, Prober: prober, Budget: time.Minute}
	before := runtime.NumGoroutine()
	var note string
	for cycle := 0; cycle < 10; cycle++ {
		s, err := Read(o)
		if err != nil {
			t.Fatal(err)
		}
		note = ""
		for _, p := range s.Processes {
			if p.PID == c.Process.Pid && p.Diagnosis != nil {
				note = strings.Join(p.Diagnosis.Notes, "; ")
			}
		}
		if cycle > 0 && !strings.Contains(note, "not probed again") {
			t.Fatalf("cycle %d: the process's diagnosis says %q", cycle, note)
		}
	}
	if n := prober.Pending(); n != 1 {
		t.Errorf("%d probes pending after 10 cycles, want 1", n)
	}
	if grew := runtime.NumGoroutine() - before; grew > 2 {
		t.Errorf("%d more goroutines after 10 cycles", grew)
	}
}

// TestTopHugeMaps plays the user who hides the diagnoses: five processes
// of nobody's with 65,480 one-page mappings each, the largest on the host.
// top stays within its budget, says each of them was not diagnosed and
// why, and diagnoses the others; with a budget too small for five full
// reads, those past it are said to be skipped.
func TestTopHugeMaps(t *testing.T) {
	bin := testprog.BuildPublic(t, "manymaps")
	huge := map[int]bool{}
	for i := 0; i < 5; i++ {
		huge[testprog.StartWith(t, testprog.Options{AsNobody: true}, bin, "65480").PID()] = true
	}
	t0 := time.Now()
	// Every process is in the top: other users' processes may be larger.
	s, err := Read(Options{Top: 1 << 20})
	took := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	if took > DefaultBudget+2*time.Second { // one diagnosis may run past the budget
		t.Errorf("top took %v, budget %v", took, DefaultBudget)
	}
	skipped, capped, diagnosed := 0, 0, 0
	for _, p := range s.Processes {
		switch {
		case huge[p.PID] && p.DiagnosisSkipped != "":
			skipped++
			if strings.Contains(p.DiagnosisSkipped, "over 20000 mappings") {
				capped++
				// Its rollup would walk every one of them again.
				if p.Rollup != nil || !strings.Contains(p.Skipped, "walk each of its over 20000 mappings") {
					t.Errorf("process %d past the mappings cap: rollup %+v, skipped %q; want none, said", p.PID, p.Rollup, p.Skipped)
				}
			}
		case huge[p.PID]:
			t.Errorf("process %d with 65,480 mappings: diagnosis %+v, skipped %q", p.PID, p.Diagnosis, p.DiagnosisSkipped)
		case p.Diagnosis != nil:
			diagnosed++
		}
	}
	if skipped != 5 || capped == 0 || s.DiagnosisSkipped < 5 || diagnosed == 0 {
		t.Errorf("%d huge skipped (%d for their maps, %d counted), %d others diagnosed; want 5, some, 5 or more, some", skipped, capped, s.DiagnosisSkipped, diagnosed)
	}
	if s.RollupManyMappings < capped {
		t.Errorf("%d rollups counted as skipped for their mappings, want at least the %d capped", s.RollupManyMappings, capped)
	}

	// --deep reads their rollups all the same.
	s, err = Read(Options{Top: 1 << 20, Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Processes {
		if huge[p.PID] && p.Rollup == nil {
			t.Errorf("--deep: process %d has no rollup (%q)", p.PID, p.Skipped)
		}
	}

	// A budget already spent when the diagnoses start: every one is skipped
	// for it, whatever this machine's speed (a budget a diagnosis or two
	// long depends on it).
	budget := time.Nanosecond
	t0 = time.Now()
	s, err = Read(Options{Top: 1 << 20, Budget: budget, MaxMappings: 1 << 20})
	took = time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	overBudget := 0
	for _, p := range s.Processes {
		if huge[p.PID] && strings.Contains(p.DiagnosisSkipped, "budget was spent") {
			overBudget++
		}
	}
	if overBudget != 5 || took > 5*time.Second {
		t.Errorf("with a %v budget: %d skipped for it, took %v", budget, overBudget, took)
	}
}

// TestReadTreeOnWorkers reads a /proc tree of 300 made-up processes on the
// workers: every process is listed once with its own figures, and the
// kernel threads, vanished processes and those over the cap are counted,
// whatever order the workers took them in.
func TestReadTreeOnWorkers(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, name, text string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if text != "" {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantKernel, wantGone, wantCapped, wantListed := 0, 0, 0, 0
	for pid := 1; pid <= 300; pid++ {
		switch {
		case pid%50 == 0: // a kernel thread: no VmRSS
			write(pid, "status", "Name:\tkworker\nPPid:\t2\nThreads:\t1\n")
			wantKernel++
		case pid%40 == 0: // gone between the listing and the read
			write(pid, "", "")
			wantGone++
		default:
			rss := pid * 4 // kB
			if pid%30 == 0 {
				rss = 16 << 20 // 16 GiB: over the 8 GiB cap
				wantCapped++
			}
			write(pid, "status", fmt.Sprintf("Name:\tp%d\nPPid:\t1\nUid:\t0\t0\t0\t0\nThreads:\t1\nVmRSS:\t%d kB\nRssAnon:\t%d kB\n", pid, rss, rss))
			write(pid, "smaps_rollup", fmt.Sprintf("00400000-7fff00000000 ---p 00000000 00:00 0 [rollup]\nRss:\t%d kB\nPss:\t%d kB\nPrivate_Dirty:\t%d kB\n", rss, pid, pid))
			wantListed++
		}
	}
	write(9999, "", "") // not a number: not a process
	if err := os.Rename(filepath.Join(root, "9999"), filepath.Join(root, "self")); err != nil {
		t.Fatal(err)
	}
	s, err := Read(Options{Proc: proc.NewFS(root), Top: 1, Budget: time.Nanosecond, RollupBudget: -1})
	if err != nil {
		t.Fatal(err)
	}
	if s.Kernel != wantKernel || s.Exited != wantGone || s.RollupSkipped != wantCapped || len(s.Processes) != wantListed {
		t.Fatalf("kernel %d exited %d capped %d listed %d, want %d %d %d %d", s.Kernel, s.Exited, s.RollupSkipped, len(s.Processes), wantKernel, wantGone, wantCapped, wantListed)
	}
	seen := map[int]bool{}
	for _, p := range s.Processes {
		if seen[p.PID] {
			t.Fatalf("process %d listed twice", p.PID)
		}
		seen[p.PID] = true
		if p.Command != fmt.Sprintf("p%d", p.PID) {
			t.Errorf("process %d is named %q", p.PID, p.Command)
		}
		if p.PID%30 == 0 {
			if p.Rollup != nil || !strings.Contains(p.Skipped, "cap") {
				t.Errorf("process %d over the cap: rollup %+v, skipped %q", p.PID, p.Rollup, p.Skipped)
			}
			continue
		}
		if p.RSSBytes != uint64(p.PID)*4<<10 || p.Rollup == nil || p.Rollup.PSS != uint64(p.PID)<<10 || p.Rollup.USS != uint64(p.PID)<<10 {
			t.Errorf("process %d: RSS %d, rollup %+v", p.PID, p.RSSBytes, p.Rollup)
		}
	}
}

// TestRollupBudget reads a made-up /proc tree with no time for smaps_rollup:
// every process under the cap says it was skipped for time, and is counted
// so; those over the cap still say the cap.
func TestRollupBudget(t *testing.T) {
	root := t.TempDir()
	capped := 0
	for pid := 1; pid <= 40; pid++ {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		rss := pid * 4
		if pid%10 == 0 {
			rss, capped = 16<<20, capped+1
		}
		status := fmt.Sprintf("Name:\tp%d\nPPid:\t1\nUid:\t0\t0\t0\t0\nThreads:\t1\nVmRSS:\t%d kB\n", pid, rss)
		rollup := "00400000-7fff00000000 ---p 00000000 00:00 0 [rollup]\nRss:\t4 kB\nPss:\t4 kB\n"
		for name, text := range map[string]string{"status": status, "smaps_rollup": rollup} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := Read(Options{Proc: proc.NewFS(root), Top: 1, Budget: time.Nanosecond, RollupBudget: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.RollupSkipped != capped || s.RollupOutOfTime != 40-capped {
		t.Fatalf("over the cap %d, out of time %d; want %d and %d", s.RollupSkipped, s.RollupOutOfTime, capped, 40-capped)
	}
	for _, p := range s.Processes {
		want := "was spent"
		if p.PID%10 == 0 {
			want = "cap"
		}
		if p.Rollup != nil || !strings.Contains(p.Skipped, want) {
			t.Errorf("process %d: rollup %+v, skipped %q (want it to say %q)", p.PID, p.Rollup, p.Skipped, want)
		}
	}
	// --deep reads every one, whatever the budget.
	s, err = Read(Options{Proc: proc.NewFS(root), Top: 1, Budget: time.Nanosecond, RollupBudget: time.Nanosecond, Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range s.Processes {
		if p.Rollup == nil || s.RollupOutOfTime != 0 {
			t.Errorf("deep: process %d: rollup %+v, skipped %q; %d out of time", p.PID, p.Rollup, p.Skipped, s.RollupOutOfTime)
		}
	}
}
