package mallocinfo_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/mallocinfo"
)

// TestCaptureSnoopAttacker is the attacker loop of TestAttackCaptureCwd
// when MEMDIAG_SNOOP_FILE is set; run normally it does nothing.
func TestCaptureSnoopAttacker(t *testing.T) {
	file := os.Getenv("MEMDIAG_SNOOP_FILE")
	if file == "" {
		t.Skip("the attacker of TestAttackCaptureCwd; runs only as its helper")
	}
	testprog.Snoop(file, os.Getenv("MEMDIAG_SNOOP_SECRET"))
}

// TestAttackCaptureCwd is issue 25 with a real gdb: root captures from a
// directory below one only root may enter, holding a descriptor it
// inherited open, while the target's user polls /proc/*/cwd and
// /proc/*/fd of every process of its uid for the whole run. gdb used to
// start in root's directory (3 of 3 captures leaked notes.txt); now the
// user must see gdb, always in / with umask 077, and running in the
// target's memory cgroup with its oom_score_adj, and reach nothing of
// root's, and the captures must be right.
func TestAttackCaptureCwd(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	bin := testprog.BuildPublic(t, "mallocdemo")
	cwd := testprog.NobodysDir(t)
	proc := testprog.StartWith(t, testprog.Options{AsNobody: true, Dir: cwd}, bin, "story1", filepath.Join(cwd, "self.xml"))
	mi := mallinfo2(t, proc.Lines)
	// The target's memory cgroup and oom_score_adj, unlike root's (the
	// test's), which gdb must take.
	if cg, err := testprog.ChildMemoryCgroup(t); err != nil {
		t.Logf("the target stays in the test's memory cgroup: %v", err)
	} else if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(proc.PID())), 0); err != nil {
		t.Logf("the target stays in the test's memory cgroup: %v", err)
	}
	if err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(proc.PID()), "oom_score_adj"), []byte("123"), 0); err != nil {
		t.Fatal(err)
	}
	targetCg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(proc.PID()), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	placed := "oom_score_adj 123 cgroup " + strings.Join(strings.Fields(string(targetCg)), ";")
	work, secret := testprog.RootOnlyWorkDir(t)
	stop := testprog.StartTestAsNobody(t, "TestCaptureSnoopAttacker", "MEMDIAG_SNOOP_FILE=notes.txt", "MEMDIAG_SNOOP_SECRET="+secret)
	t.Chdir(work)
	// As a parent of memdiag may leave one: open, not close-on-exec.
	fd, err := syscall.Open("notes.txt", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	time.Sleep(200 * time.Millisecond) // the attacker is polling
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var notes []string
		info, err := mallocinfo.Capturer{UseGDB: true, Notify: func(m string) { notes = append(notes, m) }}.Capture(ctx, proc.PID())
		cancel()
		if errors.Is(err, mallocinfo.ErrUnsafeHost) {
			// gdb on this CPU and kernel fails memdiag's canary (gdb 13
			// with AMX): no capture reaches the target, so nothing here
			// can be attacked — as if gdb were absent.
			t.Skipf("this host's gdb fails memdiag's canary, so no capture runs: %v", err)
		}
		if err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		t.Logf("capture %d: notices %q", i, notes)
		for _, n := range notes {
			if strings.Contains(n, "cgroup") || strings.Contains(n, "oom_score_adj") {
				t.Errorf("capture %d: gdb was not placed as the target: %s", i, n)
			}
		}
		s := mallocinfo.Analyze(info)
		if d := diff(s.Totals.RetainedFreeBytes, mi["freed"]); float64(d) > 0.02*float64(mi["freed"]) {
			t.Errorf("capture %d: retained %d B, the program freed %d B", i, s.Totals.RetainedFreeBytes, mi["freed"])
		}
	}
	said := stop()
	var gdbs []string
	sawPlaced := false
	for _, l := range strings.Split(said, "\n") {
		// An exiting gdb has no cwd left to describe.
		if strings.HasPrefix(l, "snoop: saw") && strings.Contains(l, " comm gdb ") && !strings.Contains(l, "no such file or directory") {
			gdbs = append(gdbs, l)
			sawPlaced = sawPlaced || strings.HasSuffix(l, placed)
			if !strings.Contains(l, " cwd / umask 0077 ") {
				t.Errorf("the attacker saw gdb outside / or without umask 077: %s", l)
			}
		}
	}
	if len(gdbs) == 0 {
		t.Fatalf("the attacker never saw gdb (it must, for this test to prove anything):\n%s", said)
	}
	t.Logf("the attacker saw gdb %d times, first: %s", len(gdbs), gdbs[0])
	// Before gdb runs an instruction it is in memdiag's cgroup, held;
	// once running, in the target's.
	if !sawPlaced {
		t.Errorf("the attacker never saw gdb with the target's %s:\n%s", placed, strings.Join(gdbs, "\n"))
	}
	if strings.Contains(said, "REACHED") {
		t.Errorf("the attacker reached root's files:\n%s", said)
	}
}
