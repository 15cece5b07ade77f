package memcg

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/testprog"
)

// forgedLogs are kernel logs as an unprivileged user can make them: the
// kernel prints a rejected mount option verbatim (after "tmpfs: Unknown
// parameter '"), with any newline in it, and a process may write to
// /dev/kmsg only where root lets it (then as facility user, 1).
var forgedLogs = map[string]string{
	"an option holding the phrases": "[ 10.0] tmpfs: Unknown parameter 'sshd invoked oom-killer: gfp_mask'\n" +
		"[ 11.0] overlayfs: Unknown parameter 'Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB'\n",
	"a newline and a fake timestamp (dmesg)": "[ 10.0] tmpfs: Unknown parameter 'x\n" +
		"               [ 10.5] sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"               [ 10.6] Memory cgroup out of memory: Killed process 1 (systemd) total-vm:1kB, anon-rss:4194304kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0'\n",
	"a newline and a fake timestamp (dmesg -r)": "<3>[ 10.0] tmpfs: Unknown parameter 'x\n" +
		"                  [ 10.5] sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"                  [ 10.6] Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n",
	"kmsg escapes the newline": "3,669,10000000,-;tmpfs: Unknown parameter 'x\\x0asshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0'\n",
	"kmsg: perfect shapes from facility user": "12,1,10000000,-;sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"11,2,10000001,-;Memory cgroup out of memory: Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0\n",
	"dmesg -r: perfect shapes from facility user": "<12>[ 10.0] sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"<11>[ 10.1] Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB\n",
	"a shape with text after it": "[ 10.0] sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0'\n" +
		"[ 10.1] Killed process 1 (systemd) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB'\n",
	"journalctl: a newline in a message": "Dec 03 11:00:00 host kernel: tmpfs: Unknown parameter 'x\n" +
		"                             Dec 03 11:00:01 host kernel: sshd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n",
}

// TestOOMForgedLines: none of the forgeries is a report, alone or before
// a real report, which still parses whole after them.
func TestOOMForgedLines(t *testing.T) {
	real, err := os.ReadFile("../fixtures/cgroup/oom-v1.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	for name, forged := range forgedLogs {
		if rs, err := ParseOOM(strings.NewReader(forged), "k.log"); err == nil {
			t.Errorf("%s: read as %d report(s), the first killing %+v", name, len(rs), rs[0].Victim)
		}
		if strings.HasPrefix(forged, "<") || strings.HasPrefix(forged, "3,") || strings.HasPrefix(forged, "12,") || strings.HasPrefix(forged, "Dec") {
			continue // another format than the fixture's: not to be mixed
		}
		rs, err := ParseOOM(strings.NewReader(forged+string(real)+forged), "k.log")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rs) != 1 || rs[0].Victim.PID != 15172 || rs[0].Victim.Name != "hog" || len(rs[0].Tasks) != 1 || rs[0].UsageBytes != 64<<20 {
			t.Errorf("%s: %d reports, the first %+v", name, len(rs), rs[0])
		}
	}
}

// TestOOMLogFormats: the real report as /dev/kmsg gives it (facility 0,
// microseconds, dictionary lines), as dmesg -r, dmesg -x and journalctl
// -k in three of its formats print it, parses as from dmesg.
func TestOOMLogFormats(t *testing.T) {
	real, err := os.ReadFile("../fixtures/cgroup/oom-v1.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(real)), "\n")
	for name, format := range map[string]func(i int, ts, msg string) string{
		"kmsg": func(i int, _, msg string) string {
			return "4," + strconv.Itoa(i) + ",13936814049,-;" + msg + "\n SUBSYSTEM=memory"
		},
		"dmesg -r":        func(_ int, ts, msg string) string { return "<4>[" + ts + "] " + msg },
		"dmesg -x":        func(_ int, ts, msg string) string { return "kern  :warn  : [" + ts + "] " + msg },
		"journalctl":      func(_ int, _, msg string) string { return "Dec 03 11:00:00 node-7 kernel: " + msg },
		"short-iso":       func(_ int, _, msg string) string { return "2026-12-03T11:00:00+0000 node-7 kernel: " + msg },
		"short-monotonic": func(_ int, ts, msg string) string { return "[" + ts + "] node-7 kernel: " + msg },
	} {
		var b strings.Builder
		for i, l := range lines {
			m := dmesgPrefix().FindStringSubmatch(l)
			b.WriteString(format(i, m[2], l[len(m[0]):]) + "\n")
		}
		rs, err := ParseOOM(strings.NewReader(b.String()), name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(rs) != 1 || rs[0].Victim.Name != "hog" || rs[0].Stat["cache"] == 0 || len(rs[0].Tasks) != 1 || rs[0].Cgroup == "" {
			t.Errorf("%s: %+v", name, rs[0])
		}
		if name == "kmsg" && rs[0].Time != "13936.814049" {
			t.Errorf("kmsg: time %q", rs[0].Time)
		}
	}
}

// TestOOMForgedByAUser plays the user: as nobody, in a user namespace of
// its own, it has the kernel log two rejected mount options that carry a
// report's lines, then reads this boot's log as memdiag oom does. No
// report may name the forged victim.
func TestOOMForgedByAUser(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare absent:", err)
	}
	forge := []string{
		"sshd invoked oom-killer: gfp_mask",
		"x\n[ 1.000] Killed process 1 (forged-by-26) total-vm:1kB",
		"x\nforged-by-26 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL)",
	}
	for _, opt := range forge {
		c := exec.Command("unshare", "-rm", "mount", "-t", "tmpfs", "-o", opt, "none", "/tmp")
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}}
		if out, err := c.CombinedOutput(); !strings.Contains(string(out), "bad option") {
			t.Skipf("no user namespaces for nobody here (%v): %s", err, out)
		}
	}
	b, err := ReadKmsg("")
	if err != nil {
		t.Skip("/dev/kmsg unreadable:", err)
	}
	if !strings.Contains(string(b), "forged-by-26") {
		t.Fatalf("the forgery is not in /dev/kmsg (%d bytes)", len(b))
	}
	dmesg, err := exec.Command("dmesg", "-r").Output()
	if err != nil {
		t.Skip("dmesg -r:", err)
	}
	for src, log := range map[string][]byte{"/dev/kmsg": b, "dmesg -r": dmesg} {
		rs, _ := ParseOOM(strings.NewReader(string(log)), src)
		for _, r := range rs {
			if strings.Contains(r.Victim.Name, "forged") || strings.Contains(r.Invoker, "forged") || strings.Contains(r.Invoker, "sshd") {
				t.Errorf("%s: a forged report at line %d: %+v", src, r.Line, r)
			}
		}
	}
}

// TestOOMVerify: a report the kernel's counters do not back is marked
// unverified and says why; one they back, consistent.
func TestOOMVerify(t *testing.T) {
	real, err := os.ReadFile("../fixtures/cgroup/oom-v2-constructed.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	procDir, sys := t.TempDir(), t.TempDir()
	cg := filepath.Join(sys, "kubepods.slice/kubepods-burstable.slice/memdiag-capture-15160.scope")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(cg, "memory.current"), "0\n")
	write(filepath.Join(cg, "memory.stat"), "anon 0\n")
	for _, tc := range []struct {
		name, vmstat, events string
		live, want           bool
		why                  string
	}{
		{"from a file", "oom_kill 3\n", "oom_kill 1\n", false, false, "saved log"},
		{"nothing killed since boot", "oom_kill 0\n", "oom_kill 1\n", true, false, "no oom_kill counted since boot"},
		{"no counter", "nr_free_pages 1\n", "oom_kill 1\n", true, false, "counts no oom_kill"},
		{"the cgroup counted none", "oom_kill 3\n", "oom_kill 0\n", true, false, "its oom_kill counter says 0"},
		{"counted", "oom_kill 3\n", "oom 1\noom_kill 1\n", true, true, "consistent"},
	} {
		write(filepath.Join(procDir, "vmstat"), tc.vmstat)
		write(filepath.Join(cg, "memory.events"), tc.events)
		rs, err := ParseOOM(strings.NewReader(string(real)), "k")
		if err != nil {
			t.Fatal(err)
		}
		Verify(rs, VerifyOptions{Live: tc.live, Proc: proc.NewFS(procDir), SysRoot: sys})
		if rs[0].Verified != tc.want || !strings.Contains(rs[0].Trust, tc.why) {
			t.Errorf("%s: verified %v, %q; want %v, %q", tc.name, rs[0].Verified, rs[0].Trust, tc.want, tc.why)
		}
	}
}

// TestReadFailsPastTheBound plays the owner of a cgroup directory given to
// memdiag cgroup DIR: memory.stat past the 1 MiB bound, cut in the middle
// of "anon 123456789012", fails the read, naming the file, instead of
// reading "anon 12345"; so does a cgroup.procs past its bound.
func TestReadFailsPastTheBound(t *testing.T) {
	dir := t.TempDir()
	pad := strings.Repeat("pad 1\n", (maxFile-10)/6)
	for name, body := range map[string]string{
		"memory.current": "4096\n",
		"memory.stat":    pad + strings.Repeat("x", maxFile-10-len(pad)) + " 1\nanon 123456789012\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(filepath.Join(dir, name), testprog.Nobody, testprog.Nobody)
	}
	g, err := Read(dir)
	if !errors.Is(err, input.ErrTooLarge) || !strings.Contains(err.Error(), "memory.stat") {
		if g != nil {
			t.Errorf("read anon as %d", g.Stat["anon"])
		}
		t.Fatalf("Read: %v, want memory.stat larger than the limit", err)
	}
	procs := strings.Repeat("1\n", maxProcs/2+1)
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Group{Dir: dir}).Members(proc.FS{}); !errors.Is(err, input.ErrTooLarge) {
		t.Errorf("Members: %v, want cgroup.procs larger than the limit", err)
	}
}

// TestOOMRedTeam replays what a red-team pass found, each from a
// fixture changed the way a user or a log format changes it: the kind of
// OOM and its cgroup must not follow a name, the formats people save
// logs in are read, and what a report lacks is unknown, never 0.
func TestOOMRedTeam(t *testing.T) {
	v2 := golden.Text(t, "cgroup/oom-v2-constructed.dmesg")
	global := golden.Text(t, "cgroup/oom-global-constructed.dmesg")
	v1 := golden.Text(t, "cgroup/oom-v1.dmesg")
	const memcg = "/kubepods.slice/kubepods-burstable.slice/memdiag-capture-15160.scope"
	lines := func(s string, f func(string) string) string {
		var b strings.Builder
		for _, l := range strings.SplitAfter(s, "\n") {
			b.WriteString(f(l))
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, log string
		check     func(r *OOMReport) string
	}{
		{"a comm with ,global_oom stays a cgroup OOM", strings.ReplaceAll(v2, "task=hog,", "task=a,global_oom,"), func(r *OOMReport) string {
			if r.Global || r.Cgroup != memcg {
				return fmt.Sprintf("global %v, cgroup %q", r.Global, r.Cgroup)
			}
			return ""
		}},
		{"a comm with ,oom_memcg= does not move the cgroup", strings.ReplaceAll(v2, "task=hog,", "task=,oom_memcg=/etc,"), func(r *OOMReport) string {
			if r.Cgroup != memcg {
				return "cgroup " + r.Cgroup
			}
			return ""
		}},
		{"a cpuset OOM is not the whole host", strings.Replace(global, "CONSTRAINT_NONE", "CONSTRAINT_CPUSET", 1), func(r *OOMReport) string {
			if !r.Global || r.Constraint != "CPUSET" || !strings.Contains(r.Findings("x")[0].Summary, "cpuset") {
				return fmt.Sprintf("global %v, constraint %q", r.Global, r.Constraint)
			}
			return ""
		}},
		{"dmesg -T", lines(v2, func(l string) string {
			return regexp.MustCompile(`^\[ *\d+\.\d+\]`).ReplaceAllString(l, "[Tue Dec  3 11:00:00 2024]")
		}), func(r *OOMReport) string {
			if r.Victim.PID != 15172 || r.Clock != "Tue Dec  3 11:00:00 2024" {
				return fmt.Sprintf("victim %d, clock %q", r.Victim.PID, r.Clock)
			}
			return ""
		}},
		{"kern.log", lines(v2, func(l string) string {
			if l == "" {
				return l
			}
			return "Dec  3 11:00:00 node7 kernel: " + l
		}), func(r *OOMReport) string {
			if r.Victim.PID != 15172 || r.Time != "13936.814049" || !r.HasUsage {
				return fmt.Sprintf("victim %d, time %q", r.Victim.PID, r.Time)
			}
			return ""
		}},
		{"dmesg -t", regexp.MustCompile(`(?m)^\[ *\d+\.\d+\] `).ReplaceAllString(v2, ""), func(r *OOMReport) string {
			if r.Victim.PID != 15172 || !r.Bare || !r.HasUsage || r.Line != 1 {
				return fmt.Sprintf("victim %d, bare %v, line %d", r.Victim.PID, r.Bare, r.Line)
			}
			return ""
		}},
		{"dmesg -t, a global OOM", regexp.MustCompile(`(?m)^\[ *\d+\.\d+\] `).ReplaceAllString(golden.Text(t, "cgroup/oom-global-linux4.15-constructed.dmesg"), ""), func(r *OOMReport) string {
			if r.Victim.PID != 3120 || !r.Bare || !r.Global {
				return fmt.Sprintf("victim %d, bare %v, global %v", r.Victim.PID, r.Bare, r.Global)
			}
			return ""
		}},
		{"a cpuset named to look like oom_memcg", strings.Replace(v2, "cpuset=/,", "cpuset=z,oom_memcg=evil,task_memcg=evil,q,", 1), func(r *OOMReport) string {
			if r.Cgroup != memcg {
				return "cgroup " + r.Cgroup
			}
			return ""
		}},
		{"the same without the statistics' line", strings.Replace(strings.Replace(v2, "cpuset=/,", "cpuset=z,oom_memcg=evil,task_memcg=evil,q,", 1), "Memory cgroup stats for", "Memory cgroup statistics of", 1), func(r *OOMReport) string {
			if r.Cgroup != memcg {
				return "cgroup " + r.Cgroup
			}
			return ""
		}},
		{"kern.log with a line a user wrote as kernel", lines(v2, func(l string) string {
			if l == "" {
				return l
			}
			return "Dec  3 11:00:00 node7 kernel: " + l
		}) + "Dec  3 11:00:01 node7 kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=1,uid=0\n", func(r *OOMReport) string {
			if r.Global || r.Cgroup != memcg {
				return fmt.Sprintf("global %v, cgroup %q", r.Global, r.Cgroup)
			}
			return ""
		}},
		{"a task's cgroup named to look like another limit", strings.Replace(golden.Text(t, "cgroup/oom-v1-linux4.15-constructed.dmesg"), "Task in /kubepods/burstable/pod6f0c1a2e-8b1d-4e55-9b61-0d2f4c9e1a77/8c2a1f0e4b7d killed", "Task in /kubepods/burstable/pod6f0c1a2e-8b1d-4e55-9b61-0d2f4c9e1a77/x killed as a result of limit of /etc killed", 1), func(r *OOMReport) string {
			if r.Cgroup == "/etc" {
				return "cgroup /etc"
			}
			return ""
		}},
		{"a header line", "-- Logs begin at Mon 2026-11-30 10:00:00 UTC, end at Thu 2026-12-03 11:00:00 UTC. --\n" + v2, func(r *OOMReport) string {
			if r.Victim.PID != 15172 || r.Bare {
				return fmt.Sprintf("victim %d, bare %v", r.Victim.PID, r.Bare)
			}
			return ""
		}},
		{"no task table: shmem charged, not unmapped", regexp.MustCompile(`(?m)^.*\[ +(pid +\]|\d+\]).*\n`).ReplaceAllString(v1, ""), func(r *OOMReport) string {
			for _, f := range r.Findings("x") {
				if f.ID == "shmem-unmapped" {
					return "shmem-unmapped without a task table"
				}
			}
			return ""
		}},
		{"a cgroup path with a space", strings.ReplaceAll(v1, "memdiag-capture-15160", "my app"), func(r *OOMReport) string {
			if g := r.Group(); g.Version != 1 || g.Stat["rss"] == 0 || !strings.HasSuffix(r.Cgroup, "/my app") {
				return fmt.Sprintf("version %d, rss %d, cgroup %q", g.Version, g.Stat["rss"], r.Cgroup)
			}
			return ""
		}},
		{"no kill line: no victim, no kill counted", v2[:strings.Index(v2, "oom-kill:")], func(r *OOMReport) string {
			if r.Killed || r.Group().Events["oom_kill"] != 0 {
				return "a kill counted"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reps, err := ParseOOM(strings.NewReader(tc.log), "x")
			if err != nil {
				t.Fatal(err)
			}
			if len(reps) != 1 {
				t.Fatalf("%d reports, want 1", len(reps))
			}
			if msg := tc.check(reps[len(reps)-1]); msg != "" {
				t.Error(msg)
			}
		})
	}
}

// TestOOMUnknownFormat: a log in a format memdiag does not read (dmesg -T
// in another language) is an error saying what it reads, not a report of
// nothing.
func TestOOMUnknownFormat(t *testing.T) {
	log := regexp.MustCompile(`(?m)^\[ *\d+\.\d+\]`).ReplaceAllString(golden.Text(t, "cgroup/oom-v2-constructed.dmesg"), "[Di Dez  3 11:00:00 2024]")
	if reps, err := ParseOOM(strings.NewReader(log), "de.dmesg"); err == nil || !strings.Contains(err.Error(), "in a log memdiag reads") {
		t.Errorf("%d reports, error %v: want an error naming the formats read", len(reps), err)
	}
}
