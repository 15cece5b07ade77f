package gdbinject

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/testprog"
)

// TestChildAttacker is the attacker loop of TestChildCarriesNothingOfRoot
// when MEMDIAG_SNOOP_FILE is set; run normally it does nothing.
func TestChildAttacker(t *testing.T) {
	file := os.Getenv("MEMDIAG_SNOOP_FILE")
	if file == "" {
		t.Skip("the attacker of TestChildCarriesNothingOfRoot; runs only as its helper")
	}
	testprog.Snoop(file, os.Getenv("MEMDIAG_SNOOP_SECRET"))
}

// setOOMScoreAdj sets pid's oom_score_adj ("self" for ours) and, for
// ours, puts it back when the test ends.
func setOOMScoreAdj(t *testing.T, pid string, v int) {
	t.Helper()
	p := filepath.Join("/proc", pid, "oom_score_adj")
	old, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(v)), 0); err != nil {
		t.Fatal(err)
	}
	if pid == "self" {
		t.Cleanup(func() { _ = os.WriteFile(p, old, 0) })
	}
}

// childState parses the "childstate: KEY VALUE" lines of the childstate
// program; a key said twice (cgroup) keeps every value.
func childState(log string) map[string][]string {
	m := map[string][]string{}
	for _, l := range strings.Split(log, "\n") {
		if rest, ok := strings.CutPrefix(l, "childstate: "); ok {
			k, v, _ := strings.Cut(rest, " ")
			m[k] = append(m[k], strings.TrimSpace(v))
		}
	}
	return m
}

// TestChildCarriesNothingOfRoot plays issue 25: root runs a capture from a
// directory below one only root may enter, with a descriptor it inherited
// open and an oom_score_adj of its own, while the target's user polls
// /proc/*/cwd and /proc/*/fd of every process of its uid. gdb (here the
// childstate program, which reports what it was started with) runs as
// that user: it must start in /, with umask 077, descriptors 0-4 only, the
// target's oom_score_adj, memory cgroup and lower resource limits, no core
// dumps, and nothing of root's within the user's reach.
func TestChildCarriesNothingOfRoot(t *testing.T) {
	testprog.NeedRoot(t)
	gdb := testprog.BuildPublic(t, "childstate")
	// The target lowers its own limits, as its user may.
	target := startAsNobody(t, "bash", "-c", "ulimit -n 512 && ulimit -S -n 256 && ulimit -u 2000 && ulimit -S -u 1000 && exec sleep 60")
	work, secret := testprog.RootOnlyWorkDir(t)
	stop := testprog.StartTestAsNobody(t, "TestChildAttacker", "MEMDIAG_SNOOP_FILE=notes.txt", "MEMDIAG_SNOOP_SECRET="+secret)

	// The target's own settings, each unlike root's.
	// Root's is raised (any process may raise its own) and the target's is
	// lower, which memdiag may set the child to without CAP_SYS_RESOURCE
	// down to the floor a privileged writer left (0 here).
	setOOMScoreAdj(t, "self", 200)
	setOOMScoreAdj(t, strconv.Itoa(target), 123)
	movedCgroup := false
	if cg, err := testprog.ChildMemoryCgroup(t); err != nil {
		t.Logf("the target stays in the test's memory cgroup, so the cgroup check proves less: %v", err)
	} else if err := os.WriteFile(filepath.Join(cg, "cgroup.procs"), []byte(strconv.Itoa(target)), 0); err != nil {
		t.Logf("the target stays in the test's memory cgroup, so the cgroup check proves less: %v", err)
	} else {
		movedCgroup = true
	}
	// Root's state the child must not take along: the working directory,
	// a descriptor memdiag's parent left open without close-on-exec.
	t.Chdir(work)
	fd, err := syscall.Open("notes.txt", syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	time.Sleep(200 * time.Millisecond) // the attacker is polling

	var notes []string
	in := Injector{GDB: gdb, Timeout: 20 * time.Second, SkipCanary: true, Notify: func(m string) { notes = append(notes, m) }}
	res, err := in.Run(context.Background(), target, Job{What: "a test", Script: "\n"})
	said := stop()
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Log)
	}
	t.Logf("notices: %q", notes)
	got := childState(string(res.Log))
	want := func(key, value string) {
		t.Helper()
		if v := got[key]; len(v) != 1 || v[0] != value {
			t.Errorf("the child's %s is %q, want %q", key, v, value)
		}
	}
	want("cwd", "/")
	want("fds", "0 1 2 3 4")
	want("Umask", "0077")
	want("oom_score_adj", "123")
	// Another user's process's limits are memdiag's to lower only with
	// CAP_SYS_RESOURCE; without it (root in some containers) the limits
	// stay and a notice must say so.
	limitsNoted := false
	for _, n := range notes {
		limitsNoted = limitsNoted || strings.Contains(n, "resource limits") && strings.Contains(n, "CAP_SYS_RESOURCE")
	}
	if haveCap(t, unix.CAP_SYS_RESOURCE) {
		if soft, hard, ok := limitOf(got, "core"); !ok || soft != 0 {
			t.Errorf("the child's core size limit is %d/%d (reported: %v), want 0 soft: no core of a crashing helper", soft, hard, ok)
		}
		wantLimitAtMost(t, got, "nofile", 512)
		wantLimitAtMost(t, got, "nproc", 2000)
	} else if !limitsNoted {
		t.Errorf("without CAP_SYS_RESOURCE the child keeps memdiag's limits, and no notice said so: %q", notes)
	}
	// Signals: what the Go runtime passes on of how memdiag was started —
	// its signal mask, and SIGHUP and SIGINT if they were ignored (a test
	// run in the background has them so) — and nothing else.
	ours := readStatusHex(t, "SigBlk")
	if blk, err := strconv.ParseUint(firstOf(got["SigBlk"]), 16, 64); err != nil || blk&^ours != 0 {
		t.Errorf("the child blocks signals %q, more than our %x", got["SigBlk"], ours)
	}
	if ign, err := strconv.ParseUint(firstOf(got["SigIgn"]), 16, 64); err != nil || ign&^(readStatusHex(t, "SigIgn")&0x3) != 0 {
		t.Errorf("the child ignores signals %q: want at most SIGHUP and SIGINT, where we do", got["SigIgn"])
	}
	targetCg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(target), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	wantCg := testprog.MemoryCgroupLine(string(targetCg))
	if gotCg := testprog.MemoryCgroupLine(strings.Join(got["cgroup"], "\n")); gotCg != wantCg {
		t.Errorf("the child's memory cgroup is %q, the target's %q (moved: %v)", gotCg, wantCg, movedCgroup)
	} else {
		t.Logf("the child's memory cgroup is the target's: %s (the target was moved out of ours: %v)", gotCg, movedCgroup)
	}
	for _, n := range notes {
		if strings.Contains(n, "cgroup") || strings.Contains(n, "oom_score_adj") {
			t.Errorf("a placement was noted as failed: %s", n)
		}
	}

	// The attacker's view.
	if !strings.Contains(said, "comm childstate cwd / ") {
		t.Errorf("the attacker never saw the child (it must, for this test to prove anything):\n%s", said)
	}
	if strings.Contains(said, "REACHED") {
		t.Errorf("the attacker reached root's files:\n%s", said)
	}
	for _, l := range strings.Split(said, "\n") {
		if strings.Contains(l, "comm childstate") {
			t.Log(l)
		}
	}
}

// startAsNobody runs argv as nobody until the test ends, and returns its
// pid once it runs sleep.
func startAsNobody(t *testing.T, argv ...string) int {
	t.Helper()
	c := exec.Command(argv[0], argv[1:]...)
	c.Dir = "/"
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.Process.Pid), "comm")); string(b) == "sleep\n" {
			return c.Process.Pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%q did not exec sleep", argv)
	return 0
}

// haveCap reports whether this process has capability c in effect.
func haveCap(t *testing.T, c uint) bool {
	t.Helper()
	return readStatusHex(t, "CapEff")&(1<<c) != 0
}

// readStatusHex reads the hexadecimal mask key of /proc/self/status.
func readStatusHex(t *testing.T, key string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":\t"); ok {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("/proc/self/status: %s: %v", l, err)
			}
			return n
		}
	}
	t.Fatalf("/proc/self/status has no %s", key)
	return 0
}

func firstOf(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// wantLimitAtMost checks that the child's soft and hard limit of name are
// at most max (-1 is unlimited).
func wantLimitAtMost(t *testing.T, got map[string][]string, name string, max int64) {
	t.Helper()
	soft, hard, ok := limitOf(got, name)
	if !ok {
		t.Errorf("the child did not report its %s limit: %q", name, got["rlimit"])
	} else if soft < 0 || hard < 0 || soft > max || hard > max {
		t.Errorf("the child's %s limit is %d/%d, the target's at most %d", name, soft, hard, max)
	}
}

// limitOf is the child's soft and hard limit of name.
func limitOf(got map[string][]string, name string) (soft, hard int64, ok bool) {
	for _, v := range got["rlimit"] {
		if f := strings.Fields(v); len(f) == 3 && f[0] == name {
			soft, _ = strconv.ParseInt(f[1], 10, 64)
			hard, _ = strconv.ParseInt(f[2], 10, 64)
			return soft, hard, true
		}
	}
	return 0, 0, false
}
