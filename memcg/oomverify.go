package memcg

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/proc"
)

// VerifyOptions says where the counters are, and whether the log can be
// checked against them at all.
type VerifyOptions struct {
	// Live: the log is this boot's, read here (/dev/kmsg, dmesg). A saved
	// file may come from another host or boot: its reports are left
	// unverified.
	Live bool
	// Proc is the proc filesystem, SysRoot where cgroup filesystems are
	// mounted.
	Proc    proc.FS
	SysRoot string
}

// Verify checks each report against what the kernel counted: /proc/vmstat
// oom_kill (every kill since boot) and, while the cgroup the report names
// exists, its own oom_kill (v2 memory.events, v1 memory.oom_control). A
// kernel log holds text users choose, so a report is only as good as these
// counters: one they do not back is marked unverified, saying why. The
// counters bound how many reports can be genuine; they cannot tell which.
func Verify(reports []*OOMReport, o VerifyOptions) {
	for _, r := range reports {
		r.Verified, r.Trust = false, ""
	}
	if !o.Live {
		setTrust(reports, "unverified: read from a saved log; this host's oom_kill counters say nothing of it")
		return
	}
	kills := 0
	byCgroup := map[string]int{}
	for _, r := range reports {
		if r.Killed {
			kills++
			byCgroup[r.Cgroup]++
		}
	}
	total, err := vmstatOOMKill(o.Proc)
	switch {
	case err != nil:
		setTrust(reports, fmt.Sprintf("unverified: %v", err))
		return
	case total == 0:
		setTrust(reports, "unverified: no oom_kill counted since boot (/proc/vmstat): the kernel killed nothing, so these lines are not its reports")
		return
	case uint64(kills) > total:
		setTrust(reports, fmt.Sprintf("unverified: the log holds %d kill reports, the kernel counted %d kills since boot (/proc/vmstat oom_kill): some are not the kernel's", kills, total))
		return
	}
	for _, r := range reports {
		verifyOne(r, byCgroup[r.Cgroup], total, o)
	}
}

// verifyOne checks one report against its cgroup's counter, n being how
// many kill reports name that cgroup.
func verifyOne(r *OOMReport, n int, total uint64, o VerifyOptions) {
	if !r.Killed {
		r.Trust = `unverified: no "Killed process" line`
		return
	}
	if r.Bare {
		r.Trust = "unverified: the log has no timestamps (dmesg -t), so a message with a newline in it reads as records"
		return
	}
	counted := fmt.Sprintf("%d kill(s) counted since boot (/proc/vmstat oom_kill)", total)
	if r.Cgroup == "" {
		r.Verified, r.Trust = true, "consistent with the kernel's counters: "+counted
		return
	}
	g, dir := findCgroup(o.SysRoot, r.Cgroup)
	if g == nil {
		r.Verified, r.Trust = true, "consistent with the kernel's counters: "+counted+"; the cgroup is gone, its own count unread"
		return
	}
	c, ok := g.Events["oom_kill"]
	switch {
	case !ok:
		r.Verified, r.Trust = true, "consistent with the kernel's counters: "+counted+"; the cgroup counts no oom_kill (kernel before 4.13)"
	case c < uint64(n):
		r.Trust = fmt.Sprintf("unverified: %d kill report(s) name %s, its oom_kill counter says %d", n, dir, c)
	default:
		r.Verified, r.Trust = true, fmt.Sprintf("consistent with the kernel's counters: %s; %s counted %d", counted, dir, c)
	}
}

func setTrust(reports []*OOMReport, why string) {
	for _, r := range reports {
		r.Trust = why
	}
}

// findCgroup reads the cgroup named by an oom_memcg path, under the v1
// memory hierarchy or the unified one. A path with ".." is refused: it
// comes from the log.
func findCgroup(sysRoot, path string) (*Group, string) {
	if sysRoot == "" {
		sysRoot = "/sys/fs/cgroup"
	}
	if !strings.HasPrefix(path, "/") || strings.Contains(path, "..") {
		return nil, ""
	}
	for _, root := range []string{"memory", "", "unified"} {
		dir := filepath.Join(sysRoot, root, path)
		if g, err := Read(dir); err == nil {
			return g, dir
		}
	}
	return nil, ""
}

// vmstatOOMKill reads oom_kill from /proc/vmstat: every OOM kill since
// boot, global or in a cgroup (Linux 4.13 and later).
func vmstatOOMKill(fsys proc.FS) (uint64, error) {
	b, err := readSmall(fsys.Path("vmstat"))
	if err != nil {
		return 0, fmt.Errorf("reading the kill counter: %w", err)
	}
	for _, l := range bytes.Split(b, []byte{'\n'}) {
		if v, ok := bytes.CutPrefix(l, []byte("oom_kill ")); ok {
			n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: oom_kill %q: %w", fsys.Path("vmstat"), v, err)
			}
			return n, nil
		}
	}
	return 0, fmt.Errorf("%s counts no oom_kill (a kernel before 4.13)", fsys.Path("vmstat"))
}
