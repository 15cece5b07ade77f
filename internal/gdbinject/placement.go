package gdbinject

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
)

// placement is what of the target's a helper takes instead of memdiag's,
// read before it starts and applied while it is held (holdAtExec).
type placement struct {
	pid int // the target's
	// cgroup is the target's memory cgroup directory, opened; nil when it
	// could not be, with cgroupErr saying why.
	cgroup    *os.File
	cgroupErr error
	oomAdj    int
	oomErr    error
	// limits are the target's hard limits of the resources capped by
	// them (limitNames), RLIM_INFINITY when unlimited.
	limits    map[int]uint64
	limitsErr error
}

// readPlacement reads the target's memory cgroup, oom_score_adj and
// resource limits from proc (/proc/PID). What it cannot read is reported
// when the placement is applied, not here: the capture goes on either way.
func readPlacement(proc string, pid int) *placement {
	p := &placement{pid: pid}
	p.cgroup, p.cgroupErr = openTargetCgroup(proc)
	p.oomAdj, p.oomErr = readOOMScoreAdj(proc)
	p.limits, p.limitsErr = readHardLimits(proc)
	return p
}

// close releases the cgroup directory.
func (p *placement) close() {
	if p.cgroup != nil {
		p.cgroup.Close()
	}
}

// apply places the held child pid, and returns a note, in words for the
// user, for each part that failed: the capture goes on, with gdb
// bounded by memdiag's settings in that respect, but never silently.
func (p *placement) apply(child int) []string {
	var notes []string
	err := p.cgroupErr
	if err == nil {
		err = joinCgroup(p.cgroup, child)
	}
	if err != nil {
		notes = append(notes, fmt.Sprintf("gdb runs in memdiag's memory cgroup, not in process %d's: %v", p.pid, err))
	}
	err = p.oomErr
	if err == nil {
		err = writeOOMScoreAdj(child, p.oomAdj)
	}
	if err != nil {
		notes = append(notes, fmt.Sprintf("gdb keeps memdiag's oom_score_adj, not process %d's: %v", p.pid, err))
	}
	err = p.limitsErr
	if err == nil {
		err = lowerLimits(child, p.limits)
	}
	if err != nil {
		notes = append(notes, fmt.Sprintf("gdb keeps memdiag's resource limits, not process %d's: %v", p.pid, err))
	}
	return notes
}

// Where a process's memory cgroup is, from its /proc/PID/cgroup.
var (
	errCgroupForged  = errors.New("its /proc/PID/cgroup lists a hierarchy twice or has a line that is not one (a cgroup name holding a newline)")
	errCgroupOutside = errors.New("its cgroup path leaves memdiag's cgroup namespace or mount, or has an empty step")
	errNoMemoryCg    = errors.New("no memory cgroup is listed for it")
)

// memoryCgroupPath finds in a /proc/PID/cgroup file the hierarchy that has
// the memory controller and the process's cgroup in it: cgroup v1's line
// whose controllers include memory, else cgroup v2's "0::" line. The
// kernel writes the file, but the names in it are the cgroups' own, which
// whoever may make a cgroup there chose (a delegated subtree is the
// target's user's): a name holding a newline forges a line. So a
// hierarchy listed twice, a malformed line, or a path with an empty, "."
// or ".." step (the latter how cgroup v2 shows a cgroup outside our
// namespace) is refused.
func memoryCgroupPath(cgroupFile string) (v2 bool, path string, err error) {
	seen := map[string]bool{}
	var v1Path, v2Path string
	found1, found2 := false, false
	for _, line := range strings.Split(strings.TrimSuffix(cgroupFile, "\n"), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 || seen[f[0]] || !strings.HasPrefix(f[2], "/") {
			return false, "", errCgroupForged
		}
		seen[f[0]] = true
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				v1Path, found1 = f[2], true
			}
		}
		if f[0] == "0" && f[1] == "" {
			v2Path, found2 = f[2], true
		}
	}
	switch {
	case found1:
		path = v1Path
	case found2:
		v2, path = true, v2Path
	default:
		return false, "", errNoMemoryCg
	}
	for _, step := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
		if step == "." || step == ".." || (step == "" && path != "/") {
			return false, "", fmt.Errorf("%w: %q", errCgroupOutside, path)
		}
	}
	return v2, path, nil
}

// cgroupMount finds in mountinfo (memdiag's /proc/self/mountinfo) the
// mount of the memory hierarchy — cgroup2, or the cgroup v1 mount with the
// memory controller — and returns its mount point and the cgroup path
// (from /proc/PID/cgroup) relative to it.
func cgroupMount(mountinfo string, v2 bool, path string) (mountPoint, rel string, err error) {
	for _, line := range strings.Split(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		switch {
		case v2 && g[0] == "cgroup2":
		case !v2 && g[0] == "cgroup" && hasOption(g[2], "memory"):
		default:
			continue
		}
		root, mp := unescapeMount(f[3]), unescapeMount(f[4])
		switch {
		case root == "/":
			return mp, path, nil
		case path == root:
			return mp, "/", nil
		case strings.HasPrefix(path, root+"/"):
			return mp, path[len(root):], nil
		}
		return "", "", fmt.Errorf("%w: %s is mounted from %s only", errCgroupOutside, mp, root)
	}
	return "", "", fmt.Errorf("no memory cgroup hierarchy is mounted (v2: %v)", v2)
}

func hasOption(opts, want string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == want {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// openTargetCgroup opens the directory of the memory cgroup of the
// process at proc.
func openTargetCgroup(proc string) (*os.File, error) {
	b, err := readSmall(filepath.Join(proc, "cgroup"), 64<<10)
	if err != nil {
		return nil, err
	}
	v2, path, err := memoryCgroupPath(string(b))
	if err != nil {
		return nil, err
	}
	mi, err := readSmall("/proc/self/mountinfo", 4<<20)
	if err != nil {
		return nil, err
	}
	mp, rel, err := cgroupMount(string(mi), v2, path)
	if err != nil {
		return nil, err
	}
	return openCgroupDir(mp, rel)
}

// openCgroupDir opens rel below the cgroup mount mountPoint one step at a
// time, following no symbolic link, and checks that what it reached is a
// directory of a cgroup file system: a delegated subtree is the target
// user's to shape.
func openCgroupDir(mountPoint, rel string) (*os.File, error) {
	fd, err := unix.Open(mountPoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", mountPoint, err)
	}
	for _, step := range strings.Split(strings.Trim(rel, "/"), "/") {
		if step == "" {
			continue
		}
		next, err := unix.Openat(fd, step, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			return nil, fmt.Errorf("opening cgroup %s below %s: %w", rel, mountPoint, err)
		}
		fd = next
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("cgroup %s: %w", rel, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC && st.Type != unix.CGROUP_SUPER_MAGIC {
		unix.Close(fd)
		return nil, fmt.Errorf("%s%s is not on a cgroup file system (magic %#x)", mountPoint, rel, st.Type)
	}
	return os.NewFile(uintptr(fd), filepath.Join(mountPoint, rel)), nil
}

// joinCgroup moves process pid into the cgroup directory dir.
func joinCgroup(dir *os.File, pid int) error {
	fd, err := unix.Openat(int(dir.Fd()), "cgroup.procs", unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s/cgroup.procs: %w", dir.Name(), err)
	}
	f := os.NewFile(uintptr(fd), dir.Name()+"/cgroup.procs")
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("moving gdb into %s: %w", dir.Name(), err)
	}
	return nil
}

// readOOMScoreAdj reads proc's oom_score_adj, which the kernel keeps in
// [-1000, 1000].
func readOOMScoreAdj(proc string) (int, error) {
	b, err := readSmall(filepath.Join(proc, "oom_score_adj"), 32)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < -1000 || n > 1000 {
		return 0, fmt.Errorf("its oom_score_adj %q is not a number in [-1000, 1000]", b)
	}
	return n, nil
}

// writeOOMScoreAdj gives the child the target's oom_score_adj. It is
// written from memdiag, as root, into /proc/CHILD: oom_score_adj is per
// process and inherited at fork, so setting memdiag's own to pass it on
// would change memdiag's for that time; and the child, as another user,
// could not lower its own. Lowering it needs CAP_SYS_RESOURCE, except down
// to the floor a privileged writer set (oom_score_adj_min); raising it
// never does.
func writeOOMScoreAdj(child, v int) error {
	f, err := os.OpenFile(proc.FS{}.PIDPath(child, "oom_score_adj"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(v)); err != nil {
		if errors.Is(err, unix.EACCES) {
			return fmt.Errorf("setting %d: lowering it needs CAP_SYS_RESOURCE, which memdiag lacks: %w", v, err)
		}
		return fmt.Errorf("setting %d: %w", v, err)
	}
	return nil
}

// limitNames are the resources, by their names in /proc/PID/limits, whose
// hard limit the child gets no more of than the target has: a limit above
// the target's (a realtime priority, more processes or descriptors than
// its user may have) is root's to give, not the user's. Memory sizes
// (address space, data, stack, resident set) are left: the target's
// memory cgroup bounds gdb's memory, and gdb's needs are not the target's.
var limitNames = map[string]int{
	"Max cpu time":          unix.RLIMIT_CPU,
	"Max file size":         unix.RLIMIT_FSIZE,
	"Max processes":         unix.RLIMIT_NPROC,
	"Max open files":        unix.RLIMIT_NOFILE,
	"Max locked memory":     unix.RLIMIT_MEMLOCK,
	"Max file locks":        unix.RLIMIT_LOCKS,
	"Max pending signals":   unix.RLIMIT_SIGPENDING,
	"Max msgqueue size":     unix.RLIMIT_MSGQUEUE,
	"Max nice priority":     unix.RLIMIT_NICE,
	"Max realtime priority": unix.RLIMIT_RTPRIO,
	"Max realtime timeout":  unix.RLIMIT_RTTIME,
	"Max core file size":    unix.RLIMIT_CORE,
}

// readLimits reads proc's limits file (readable by anyone, unlike
// prlimit's answer without CAP_SYS_RESOURCE): soft and hard limit of each
// resource in limitNames.
func readLimits(proc string) (map[int]unix.Rlimit, error) {
	b, err := readSmall(filepath.Join(proc, "limits"), 16<<10)
	if err != nil {
		return nil, err
	}
	return parseLimits(string(b))
}

// parseLimits parses a /proc/PID/limits file: a header, then a line per
// resource, its name in 25 columns, then soft limit, hard limit, unit.
func parseLimits(s string) (map[int]unix.Rlimit, error) {
	out := map[int]unix.Rlimit{}
	for _, line := range strings.Split(s, "\n") {
		if len(line) < 26 {
			continue
		}
		res, ok := limitNames[strings.TrimSpace(line[:25])]
		f := strings.Fields(line[25:])
		if !ok || len(f) < 2 {
			continue
		}
		soft, err1 := parseLimit(f[0])
		hard, err2 := parseLimit(f[1])
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("limits: %q: %w", line, err)
		}
		out[res] = unix.Rlimit{Cur: soft, Max: hard}
	}
	if len(out) != len(limitNames) {
		return nil, fmt.Errorf("limits: %d of the %d resources listed", len(out), len(limitNames))
	}
	return out, nil
}

func parseLimit(s string) (uint64, error) {
	if s == "unlimited" {
		return unix.RLIM_INFINITY, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readHardLimits is the target's hard limit of each resource of
// limitNames.
func readHardLimits(proc string) (map[int]uint64, error) {
	lims, err := readLimits(proc)
	if err != nil {
		return nil, err
	}
	out := map[int]uint64{}
	for res, l := range lims {
		out[res] = l.Max
	}
	return out, nil
}

// lowerLimits lowers the child's hard limits to the target's
// (targetHard), and its soft core size to 0: a crashing gdb leaves no
// core. Limits are only lowered, never raised, and a limit already low
// enough is not set again. Changing another user's process's limits needs
// CAP_SYS_RESOURCE.
func lowerLimits(child int, targetHard map[int]uint64) error {
	have, err := readLimits(proc.FS{}.Dir(child))
	if err != nil {
		return err
	}
	for res, cur := range have {
		want := cur
		want.Max = min(cur.Max, targetHard[res])
		want.Cur = min(cur.Cur, want.Max)
		if res == unix.RLIMIT_CORE {
			want.Cur = 0
		}
		if want == cur {
			continue
		}
		if err := unix.Prlimit(child, res, &want, nil); err != nil {
			if errors.Is(err, unix.EPERM) {
				return fmt.Errorf("lowering another user's process's limits needs CAP_SYS_RESOURCE, which memdiag lacks: %w", err)
			}
			return fmt.Errorf("lowering resource %d to %d/%d: %w", res, want.Cur, want.Max, err)
		}
	}
	return nil
}

// readSmall reads at most limit bytes of a kernel file; a longer one is
// an error, never silently cut.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is longer than %d bytes", path, limit)
	}
	return b, nil
}
