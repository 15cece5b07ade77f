package testprog

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Snoop is the attacker loop of the tests of what a helper run as the
// target's user inherits: run as that user (StartTestAsNobody), it polls
// every process of its own uid but itself for as long as it lives, and
// follows each one's /proc/PID/cwd — a magic link that skips the
// permission checks of the directories above — and /proc/PID/fd/*: it
// lists the directory, reads the file named file there and every regular
// file an fd leads to, and says whether any of that held secret. Each
// process is described in a "snoop: saw …" line, again whenever what is
// described changes, and a "snoop:
// looked at …" line sums up every 50 ms; what reached secret is named in
// "snoop: REACHED …" lines (each once). It never returns.
func Snoop(file, secret string) {
	self := os.Getpid()
	uid := os.Getuid()
	described := map[string]bool{}
	var looked, reached int
	last := time.Now()
	for {
		for _, pid := range pidsOf(uid, self) {
			looked++
			proc := filepath.Join("/proc", strconv.Itoa(pid))
			if hits := reach(proc, file, secret); len(hits) > 0 {
				reached += len(hits)
				what := fmt.Sprintf("snoop: REACHED in process %d (%s): %s", pid, comm(proc), strings.Join(hits, "; "))
				if !described[what] {
					described[what] = true
					fmt.Println(what)
				}
			}
			if d := describe(pid, proc); !described[d] {
				described[d] = true
				fmt.Println(d)
			}
		}
		if time.Since(last) > 50*time.Millisecond {
			last = time.Now()
			fmt.Printf("snoop: looked at %d processes, reached %d things of root's\n", looked, reached)
		}
	}
}

// pidsOf lists the processes whose real uid is uid, but not skip.
func pidsOf(uid, skip int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == skip {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		if f := statusFields(b, "Uid"); len(f) > 0 && f[0] == strconv.Itoa(uid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reach does what the target's user can with proc's cwd and fds, and
// returns what of it held secret.
func reach(proc, file, secret string) []string {
	var hits []string
	cwd := filepath.Join(proc, "cwd")
	if names, err := os.ReadDir(cwd); err == nil {
		for _, n := range names {
			if n.Name() == file {
				hits = append(hits, "listed the working directory, which holds "+file)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(cwd, file)); err == nil && bytes.Contains(b, []byte(secret)) {
		hits = append(hits, "read "+file+" through /proc/PID/cwd")
	}
	fds, _ := os.ReadDir(filepath.Join(proc, "fd"))
	for _, fd := range fds {
		p := filepath.Join(proc, "fd", fd.Name())
		// Only regular files are read: reading one of gdb's pipes would
		// steal what memdiag waits for, which is another attack.
		if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
			hits = append(hits, "read descriptor "+fd.Name())
		}
	}
	return hits
}

// describe says what the target's user sees of a process: the state a
// helper must not carry of root's.
func describe(pid int, proc string) string {
	cwd, err := os.Readlink(filepath.Join(proc, "cwd"))
	if err != nil {
		cwd = "(" + err.Error() + ")"
	}
	var fds []string
	entries, _ := os.ReadDir(filepath.Join(proc, "fd"))
	for _, e := range entries {
		fds = append(fds, e.Name())
	}
	status, _ := os.ReadFile(filepath.Join(proc, "status"))
	oom, _ := os.ReadFile(filepath.Join(proc, "oom_score_adj"))
	cg, _ := os.ReadFile(filepath.Join(proc, "cgroup"))
	return fmt.Sprintf("snoop: saw pid %d comm %s cwd %s umask %s fds %s oom_score_adj %s cgroup %s",
		pid, comm(proc), cwd, strings.Join(statusFields(status, "Umask"), ""), strings.Join(fds, ","),
		strings.TrimSpace(string(oom)), strings.Join(strings.Fields(string(cg)), ";"))
}

func comm(proc string) string {
	b, _ := os.ReadFile(filepath.Join(proc, "comm"))
	return strings.TrimSpace(string(b))
}

// statusFields returns the fields of the line "key:" of a status file.
func statusFields(status []byte, key string) []string {
	for _, l := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == key {
			return strings.Fields(v)
		}
	}
	return nil
}

// RootOnlyWorkDir makes DIR/secret (0700, root's) holding work (0755)
// holding notes.txt (0644): a directory only root can reach by its path,
// whose contents anyone could read through a magic link to it
// (/proc/PID/cwd). It returns work and what notes.txt says, for Snoop.
func RootOnlyWorkDir(t testing.TB) (work, secret string) {
	t.Helper()
	work = filepath.Join(t.TempDir(), "secret", "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	secret = "root-only-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(filepath.Join(work, "notes.txt"), []byte(secret+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return work, secret
}

// MemoryCgroupLine is the line of /proc/PID/cgroup (pid 0: this process)
// that names the memory cgroup: the cgroup v1 hierarchy with the memory
// controller where there is one, else cgroup v2's "0::" line. It is what a
// helper placed in the target's memory cgroup has the same of.
func MemoryCgroupLine(cgroupFile string) string {
	v2 := ""
	for _, l := range strings.Split(cgroupFile, "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return l
			}
		}
		if f[0] == "0" && f[1] == "" {
			v2 = l
		}
	}
	return v2
}

// ChildMemoryCgroup makes a new, empty memory cgroup below this process's
// own (cgroup v1's memory hierarchy where the memory controller is there,
// cgroup v2's otherwise) and returns its directory, or an error saying why
// it cannot. When the test ends, what is left in it goes back to the
// parent and it is removed.
func ChildMemoryCgroup(t testing.TB) (string, error) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	line := MemoryCgroupLine(string(b))
	f := strings.SplitN(line, ":", 3)
	if len(f) != 3 {
		return "", fmt.Errorf("no memory cgroup in /proc/self/cgroup:\n%s", b)
	}
	mount := "/sys/fs/cgroup/memory"
	if f[0] == "0" {
		mount = "/sys/fs/cgroup"
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.procs"); err != nil {
			mount = "/sys/fs/cgroup/unified" // a hybrid host's v2 hierarchy
		}
	}
	parent := filepath.Join(mount, f[2])
	var st syscall.Statfs_t
	if err := syscall.Statfs(parent, &st); err != nil || (st.Type != 0x63677270 && st.Type != 0x27e0eb) {
		return "", fmt.Errorf("%s is not a cgroup directory (%v)", parent, err)
	}
	cg := filepath.Join(parent, fmt.Sprintf("memdiag-test-%d-%d", os.Getpid(), time.Now().UnixNano()))
	if err := os.Mkdir(cg, 0o755); err != nil {
		return "", err
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(cg, "cgroup.procs")); err == nil {
			for _, pid := range strings.Fields(string(b)) {
				_ = os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(pid), 0)
			}
		}
		if err := os.Remove(cg); err != nil {
			t.Errorf("removing %s: %v", cg, err)
		}
	})
	return cg, nil
}
