package gdbinject

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

func TestMemoryCgroupPath(t *testing.T) {
	tests := []struct {
		name, file string
		v2         bool
		path       string
		err        error
	}{
		{"v2", "0::/user.slice/app.scope\n", true, "/user.slice/app.scope", nil},
		{"v2 root", "0::/\n", true, "/", nil},
		{"hybrid: v1 memory wins", "4:memory:/svc\n1:cpu,cpuacct:/\n0::/other\n", false, "/svc", nil},
		{"v1 controllers joined", "3:cpu,memory:/a/b\n", false, "/a/b", nil},
		{"no memory at all", "1:cpu:/\n", false, "", errNoMemoryCg},
		// A cgroup named "x\n0::/victim" forges a line; the real line
		// then lists hierarchy 0 too.
		{"forged by a newline", "0::/deleg/x\n0::/victim\n", false, "", errCgroupForged},
		{"forged v1", "4:memory:/deleg/x\n4:memory:/victim\n", false, "", errCgroupForged},
		{"a line that is not one", "0::/deleg/x\nvictim\n", false, "", errCgroupForged},
		{"relative", "0::deleg\n", false, "", errCgroupForged},
		{"outside our namespace", "0::/../../system.slice\n", false, "", errCgroupOutside},
		{"empty step", "0::/a//b\n", false, "", errCgroupOutside},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v2, path, err := memoryCgroupPath(tt.file)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if v2 != tt.v2 || path != tt.path {
				t.Errorf("got (%v, %q), want (%v, %q)", v2, path, tt.v2, tt.path)
			}
		})
	}
}

func TestCgroupMount(t *testing.T) {
	const mi = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/memory\040sw rw,relatime - cgroup cgroup rw,memsw
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 /kubepods/pod1 /mnt/cg rw - cgroup2 cgroup2 rw
`
	tests := []struct {
		name     string
		mi       string
		v2       bool
		path     string
		mp, rel  string
		wantFail bool
	}{
		{"v1 memory", mi, false, "/svc/a", "/sys/fs/cgroup/memory", "/svc/a", false},
		{"v2", mi, true, "/user.slice", "/sys/fs/cgroup/unified", "/user.slice", false},
		{"v2 mounted from a subtree", "50 23 0:40 /kubepods/pod1 /mnt/cg rw - cgroup2 cgroup2 rw\n", true, "/kubepods/pod1/c", "/mnt/cg", "/c", false},
		{"v2 subtree itself", "50 23 0:40 /kubepods/pod1 /mnt/cg rw - cgroup2 cgroup2 rw\n", true, "/kubepods/pod1", "/mnt/cg", "/", false},
		{"outside the mounted subtree", "50 23 0:40 /kubepods/pod1 /mnt/cg rw - cgroup2 cgroup2 rw\n", true, "/kubepods/pod10", "", "", true},
		{"escaped mount point", "36 31 0:33 / /sys/fs/cg\\040mem rw - cgroup cgroup rw,memory\n", false, "/x", "/sys/fs/cg mem", "/x", false},
		{"no memory mount", "36 31 0:33 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n", false, "/x", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mp, rel, err := cgroupMount(tt.mi, tt.v2, tt.path)
			if (err != nil) != tt.wantFail {
				t.Fatalf("error %v, want failure %v", err, tt.wantFail)
			}
			if mp != tt.mp || rel != tt.rel {
				t.Errorf("got (%q, %q), want (%q, %q)", mp, rel, tt.mp, tt.rel)
			}
		})
	}
}

// TestOpenCgroupDirRefuses: the path below the mount may be shaped by the
// target's user; a symbolic link on the way, or a directory that is not a
// cgroup's, is refused.
func TestOpenCgroupDirRefuses(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if f, err := openCgroupDir(dir, "/link"); err == nil || !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("a symlink was followed: %v", err)
		if f != nil {
			f.Close()
		}
	}
	if f, err := openCgroupDir(dir, "/real"); err == nil {
		f.Close()
		t.Errorf("a directory of %s, not on a cgroup file system, was accepted", dir)
	} else {
		t.Log(err)
	}
}

func TestParseLimits(t *testing.T) {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		t.Skipf("no /proc/self/limits: %v", err)
	}
	got, err := parseLimits(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]unix.Rlimit{}
	for _, res := range limitNames {
		var l unix.Rlimit
		if err := unix.Getrlimit(res, &l); err != nil {
			t.Fatal(err)
		}
		want[res] = l
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseLimits differs from getrlimit (-want +got):\n%s", d)
	}
	if _, err := parseLimits("Limit Soft Hard Units\nMax open files            1024                 lots                 files\n"); err == nil {
		t.Error("a limit that is not a number was accepted")
	}
	if _, err := parseLimits("Limit Soft Hard Units\n"); err == nil {
		t.Error("a limits file listing nothing was accepted")
	}
}

// TestLowerLimits lowers the limits of a child of ours (our own uid, so
// no CAP_SYS_RESOURCE is needed) to a target's hard limits: lowered where
// the target's are lower, soft core size 0, never raised.
func TestLowerLimits(t *testing.T) {
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	proc := filepath.Join("/proc", strconv.Itoa(c.Process.Pid))
	before, err := readLimits(proc)
	if err != nil {
		t.Fatal(err)
	}
	target := map[int]uint64{}
	for res := range before {
		target[res] = unix.RLIM_INFINITY
	}
	target[unix.RLIMIT_NOFILE] = 64
	target[unix.RLIMIT_RTPRIO] = 0
	if err := lowerLimits(c.Process.Pid, target); err != nil {
		t.Fatal(err)
	}
	after, err := readLimits(proc)
	if err != nil {
		t.Fatal(err)
	}
	want := before
	want[unix.RLIMIT_NOFILE] = unix.Rlimit{Cur: min(before[unix.RLIMIT_NOFILE].Cur, 64), Max: 64}
	want[unix.RLIMIT_RTPRIO] = unix.Rlimit{Cur: 0, Max: 0}
	want[unix.RLIMIT_CORE] = unix.Rlimit{Cur: 0, Max: before[unix.RLIMIT_CORE].Max}
	if d := cmp.Diff(want, after); d != "" {
		t.Errorf("limits after lowering (-want +got):\n%s", d)
	}
}

// TestPlacementSaysWhatFailed: what cannot be given of the target's is
// told, one notice each, naming the target and the reason; the capture
// goes on.
func TestPlacementSaysWhatFailed(t *testing.T) {
	c := exec.Command("sleep", "60")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
	p := &placement{pid: 4242, cgroupErr: errCgroupForged, oomErr: errors.New("gone"), limitsErr: errors.New("unreadable")}
	got := p.apply(c.Process.Pid)
	want := []string{
		"gdb runs in memdiag's memory cgroup, not in process 4242's: " + errCgroupForged.Error(),
		"gdb keeps memdiag's oom_score_adj, not process 4242's: gone",
		"gdb keeps memdiag's resource limits, not process 4242's: unreadable",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("notices (-want +got):\n%s", d)
	}
}

// TestJoinCgroup moves a process into a new cgroup through the same steps
// as a placement (mount found in mountinfo, path opened step by step,
// cgroup.procs written), in each memory-capable hierarchy this host
// mounts: cgroup v2's and, on a v1 or hybrid host, v1's memory hierarchy.
func TestJoinCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("making a cgroup needs root")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	tried := 0
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		f := strings.SplitN(line, ":", 3)
		v2 := f[0] == "0" && f[1] == ""
		if len(f) != 3 || !v2 && !hasOption(f[1], "memory") {
			continue
		}
		t.Run(map[bool]string{true: "v2", false: "v1 memory"}[v2], func(t *testing.T) {
			mp, rel, err := cgroupMount(string(mi), v2, f[2])
			if err != nil {
				t.Skipf("not mounted here: %v", err)
			}
			name := fmt.Sprintf("memdiag-join-test-%d", os.Getpid())
			dir := filepath.Join(mp, rel, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Skipf("cannot make a cgroup below ours (%v)", err)
			}
			defer os.Remove(dir)
			tried++
			c := exec.Command("sleep", "60")
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = c.Process.Kill(); _ = c.Wait() }()
			cg, err := openCgroupDir(mp, filepath.Join(rel, name))
			if err != nil {
				t.Fatal(err)
			}
			defer cg.Close()
			if err := joinCgroup(cg, c.Process.Pid); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.Process.Pid), "cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			want := f[0] + ":" + f[1] + ":" + filepath.Join(f[2], name)
			if !strings.Contains(string(b), want+"\n") {
				t.Errorf("after joining, the process's cgroups are\n%s\nwant the line %s", b, want)
			}
		})
	}
	if tried == 0 {
		t.Logf("no memory cgroup hierarchy here could take a new cgroup:\n%s", self)
	}
}
