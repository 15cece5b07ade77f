package memcg

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseOOMErrors(t *testing.T) {
	if _, err := ParseOOM(strings.NewReader("[1.0] nothing here\n"), "k.log"); err == nil || !strings.Contains(err.Error(), "k.log: no OOM report") {
		t.Errorf("got %v", err)
	}
}

func FuzzParseOOM(f *testing.F) {
	if b, err := os.ReadFile("testdata/oom-v1.txt"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("[ 1.0] a invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0\n[ 1.0] memory: usage 1kB, limit 2kB, failcnt 3\n[ 1.0] Memory cgroup stats for /x:\n[ 1.0] anon 5\n"))
	for _, name := range []string{"oom-global-constructed.dmesg", "oom-v1-linux4.15-constructed.dmesg", "oom-global-linux4.15-constructed.dmesg"} {
		if b, err := os.ReadFile("../fixtures/cgroup/" + name); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rs, err := ParseOOM(strings.NewReader(string(in)), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		if again, _ := ParseOOM(strings.NewReader(string(in)), "fuzz"); !reflect.DeepEqual(again, rs) {
			t.Fatal("the same log parsed twice gives different reports")
		}
		for _, r := range rs {
			g := r.Group()
			var sum uint64
			for _, p := range g.Breakdown() {
				sum += p.Bytes
			}
			switch {
			case r.HasUsage && sum != g.UsageBytes:
				t.Fatalf("breakdown %d ≠ usage %d", sum, g.UsageBytes)
			case r.HasUsage != (g.UsageUnknown == ""):
				t.Fatalf("usage read %v, but unknown says %q", r.HasUsage, g.UsageUnknown)
			}
			for _, f := range r.Findings("fuzz") {
				if !r.HasUsage && strings.Contains(f.Summary, "0 B limit") {
					t.Fatalf("a report without usage found %q", f.Summary)
				}
			}
		}
	})
}

// TestV2Fixture reads a cgroup v2 directory (fixtures/cgroup/v2: constructed
// after the kernel's documentation of each file, as this machine binds the
// memory controller to v1): the breakdown sums to memory.current, the kill
// and the pressure stall are found, and shmem leads.
func TestV2Fixture(t *testing.T) {
	g, err := Read("../fixtures/cgroup/v2")
	if err != nil {
		t.Fatal(err)
	}
	if g.Version != 2 || g.LimitBytes != 100<<20 || g.HighBytes != 0 || g.UsageBytes != 68<<20 {
		t.Fatalf("group %+v", g)
	}
	var sum uint64
	for _, p := range g.Breakdown() {
		sum += p.Bytes
	}
	if sum != g.UsageBytes {
		t.Errorf("breakdown sums to %d, usage %d: %+v", sum, g.UsageBytes, g.Breakdown())
	}
	if ws := g.WorkingSetBytes(); ws != g.UsageBytes-2<<20 {
		t.Errorf("working set %d", ws)
	}
	fs := g.Findings([]Member{{PID: 1, Command: "app", RSSBytes: 30 << 20, AnonBytes: 24 << 20}}, "v2")
	var ids []string
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	if got := strings.Join(ids, " "); got != "shmem-unmapped oom-kills memory-pressure" {
		t.Errorf("findings %q", got)
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "neither memory.usage_in_bytes") {
		t.Errorf("empty dir: %v", err)
	}
	os.WriteFile(dir+"/memory.current", []byte("lots\n"), 0o644)
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), `expected a byte count, got "lots"`) {
		t.Errorf("bad number: %v", err)
	}
}

// TestReadRefusesNonFiles: a directory given as DIR may be anyone's; a FIFO
// where a cgroup file should be is refused at once, not waited on, and so is
// a symbolic link.
func TestReadRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(dir+"/memory.usage_in_bytes", 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := Read(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read waited on a FIFO")
	}
	dir2 := t.TempDir()
	os.Symlink("/proc/self/status", dir2+"/memory.current")
	if _, err := Read(dir2); err == nil || !strings.Contains(err.Error(), "symbolic link") && !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("symlink: %v", err)
	}
}

// TestOOMHostileLogs: a task named with a space is kept whole (it could
// hide the largest process), a line over 1 MiB and a report cut short do
// not hide the reports after them.
func TestOOMHostileLogs(t *testing.T) {
	real, err := os.ReadFile("../fixtures/cgroup/oom-v1.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	spaced := strings.Replace(string(real), " hog\n", " Web Content\n", 1)
	cut := "[ 1.0] x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" + strings.Repeat("[ 1.0] noise\n", 200001)
	for name, in := range map[string]string{
		"a name with a space": spaced,
		"a 2 MB line first":   strings.Repeat("x", 2<<20) + "\n" + string(real),
		"a report cut short":  cut + string(real),
	} {
		rs, err := ParseOOM(strings.NewReader(in), "k.log")
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		r := rs[len(rs)-1]
		if r.Victim.Name != "hog" || len(r.Tasks) == 0 {
			t.Errorf("%s: victim %+v, tasks %+v", name, r.Victim, r.Tasks)
		}
		if name == "a name with a space" && r.Tasks[len(r.Tasks)-1].Name != "Web Content" {
			t.Errorf("task %+v: the name should be whole", r.Tasks[len(r.Tasks)-1])
		}
		if name == "a report cut short" && (len(rs) != 2 || !rs[0].Truncated) {
			t.Errorf("cut report: %d reports, first truncated %v", len(rs), rs[0].Truncated)
		}
	}
}

// TestShmemCountedOnce: four backends that each map the same 512 MiB of
// shared buffers have 2 GiB of RssShmem between them; the cgroup charges
// 512 MiB, and says that Σ RSS counts it four times over.
func TestShmemCountedOnce(t *testing.T) {
	g := &Group{Stat: map[string]uint64{"shmem": 512 << 20}, Events: map[string]uint64{}}
	var members []Member
	for i := range 4 {
		members = append(members, Member{PID: 100 + i, Command: "postgres", RSSBytes: 540 << 20, ShmemMapBytes: 512 << 20})
	}
	fs := g.Findings(members, "v2")
	var found bool
	for _, f := range fs {
		if f.ID == "shmem-shared" {
			found = true
			if f.Bytes != 1536<<20 || !strings.Contains(f.Summary, "4.0 times over") {
				t.Errorf("shmem-shared %+v", f)
			}
		}
		if f.ID == "shmem-unmapped" {
			t.Errorf("shmem every process maps called unmapped: %+v", f)
		}
	}
	if !found {
		t.Errorf("findings %+v, want shmem-shared", fs)
	}
}

// TestOOMOldTaskTable: a task table of rss alone (kernels before the
// rss_anon, rss_shmem columns) cannot show what the processes map, so
// shmem charged to the cgroup is reported as charged, not as mapped by
// none of them.
func TestOOMOldTaskTable(t *testing.T) {
	b, err := os.ReadFile("../fixtures/cgroup/oom-v1-linux4.15-constructed.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	log := strings.Replace(string(b), "shmem:0KB", "shmem:409600KB", 1)
	reps, err := ParseOOM(strings.NewReader(log), "old.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	r := reps[0]
	if r.Cgroup != "/kubepods/burstable/pod6f0c1a2e-8b1d-4e55-9b61-0d2f4c9e1a77/8c2a1f0e4b7d" || r.Global || !r.Killed || r.Victim.PID != 20509 || len(r.Tasks) != 3 {
		t.Fatalf("read as %+v", r)
	}
	var ids []string
	for _, f := range r.Findings("old.dmesg") {
		ids = append(ids, f.ID)
	}
	if !slices.Contains(ids, "shmem-charged") || slices.Contains(ids, "shmem-unmapped") {
		t.Errorf("findings %v: want shmem-charged, not shmem-unmapped", ids)
	}
	for _, m := range r.Members() {
		if !m.SplitUnknown {
			t.Errorf("member %d: split known from a table of rss alone", m.PID)
		}
	}
}
