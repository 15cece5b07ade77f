package memcg

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
)

// Member is a process of the cgroup, with what it maps.
type Member struct {
	PID                                int
	Command                            string
	RSSBytes, AnonBytes, ShmemMapBytes uint64
	// SplitUnknown: only RSSBytes is known (an OOM report whose task
	// table has an rss column and no rss_anon, rss_shmem).
	SplitUnknown bool
}

// Members reads the processes listed in the cgroup's cgroup.procs, with
// their RSS from /proc/PID/status; processes that exit meanwhile are left
// out. A cgroup.procs that cannot be read whole is an error: a list cut
// short would hide the processes after the cut.
func (g *Group) Members(fsys proc.FS) ([]Member, error) {
	b, err := readBounded(filepath.Join(g.Dir, "cgroup.procs"), maxProcs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil // a saved cgroup directory, without its processes
	}
	if err != nil {
		return nil, fmt.Errorf("the cgroup's processes: %w", err)
	}
	var out []Member
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		if st, err := fsys.Status(pid); err == nil {
			out = append(out, Member{PID: pid, Command: st.Name, RSSBytes: st.RSSBytes, AnonBytes: st.RSSAnonBytes, ShmemMapBytes: st.RSSShmemBytes})
		}
	}
	return out, nil
}

// maxProcs bounds cgroup.procs: 4,194,304 pids (the largest pid_max) of
// seven digits and a newline.
const maxProcs = 32 << 20

// Findings draws conclusions: OOM kills, the distance to the limit, shmem
// that no process maps, a working set inflated by reclaimable cache,
// pressure stalls. members may be nil (an OOM report's cgroup is gone).
func (g *Group) Findings(members []Member, source string) []finding.Finding {
	var fs []finding.Finding
	if n := g.Events["oom_kill"]; n > 0 {
		killed := fmt.Sprintf("the OOM killer killed %d %s in this cgroup", n, humanize.Plural(int(n), "process", "processes"))
		evidence := fmt.Sprintf("%s: oom_kill %d, failcnt %d (times the limit was hit)", source, n, g.Failcnt)
		switch {
		case g.UsageUnknown != "":
			killed += " (its limit is not known: " + g.UsageUnknown + ")"
			evidence = fmt.Sprintf("%s: oom_kill %d", source, n)
		case g.LimitBytes > 0:
			killed += " at its " + humanize.Bytes(g.LimitBytes) + " limit"
		default:
			killed += " (it has no limit of its own: an ancestor cgroup's limit, or the whole host's memory, ran out)"
		}
		fs = append(fs, finding.Finding{
			// An event, not memory: the finding that says what filled the
			// cgroup ranks before it.
			ID: "oom-kills", Severity: finding.High,
			Summary:  killed,
			Evidence: []string{evidence},
			Advice: []string{
				"Read the kernel's report of the kill: memdiag oom (from dmesg) shows what the cgroup held at that moment, and the victim.",
				"A JVM killed with no OutOfMemoryError: its heap max + non-heap + direct limit exceeds the container's limit; size -Xmx (or MaxRAMPercentage) below the limit less native memory.",
			},
		})
	}
	if g.LimitBytes > 0 && g.UsageBytes*10 >= g.LimitBytes*9 {
		fs = append(fs, finding.Finding{
			ID: "near-limit", Severity: finding.Medium, Bytes: g.UsageBytes,
			Summary:  fmt.Sprintf("usage %s is %.0f %% of the %s limit; the working set is %s", humanize.Bytes(g.UsageBytes), 100*float64(g.UsageBytes)/float64(g.LimitBytes), humanize.Bytes(g.LimitBytes), humanize.Bytes(g.WorkingSetBytes())),
			Evidence: []string{fmt.Sprintf("%s: usage %d B, limit %d B, reclaimable %d B", source, g.UsageBytes, g.LimitBytes, g.ReclaimableBytes())},
			Advice:   []string{"Only what is not reclaimable brings the OOM killer: compare the working set and the reclaimable bytes above; anonymous memory and shmem are what must fit."},
		})
	}
	if members != nil {
		fs = append(fs, g.shmemFindings(members, source)...)
	}
	if f, ok := g.workingSetInflated(source); ok {
		fs = append(fs, f)
	}
	for _, l := range g.Pressure {
		if strings.HasPrefix(l, "full ") {
			if f := strings.Fields(l); len(f) > 1 {
				if v, ok := strings.CutPrefix(f[1], "avg10="); ok {
					if x, err := strconv.ParseFloat(v, 64); err == nil && x >= 5 {
						fs = append(fs, finding.Finding{ID: "memory-pressure", Severity: finding.Medium,
							Summary:  fmt.Sprintf("every task of the cgroup stalled on memory %.1f %% of the last 10 s (PSI full)", x),
							Evidence: []string{source + ": memory.pressure " + l},
							Advice:   []string{"The cgroup is reclaiming hard near its limit: raise the limit or shrink the working set."}})
					}
				}
			}
		}
	}
	finding.Sort(fs)
	return fs
}

// shmemFindings compares the cgroup's shmem with what its processes map:
// shmem no process maps (files in /dev/shm), or pages many map.
func (g *Group) shmemFindings(members []Member, source string) []finding.Finding {
	shmem := g.Stat["shmem"]
	if shmem < 16<<20 {
		return nil
	}
	var fs []finding.Finding
	var mapped uint64
	// A report without its task table, or with one of RSS alone, does not
	// say what its processes map.
	if g.tasksUnknown || slices.ContainsFunc(members, func(m Member) bool { return m.SplitUnknown }) {
		return []finding.Finding{{
			ID: "shmem-charged", Severity: finding.Info, Bytes: shmem,
			Summary:  fmt.Sprintf("%s of shmem is charged to the cgroup; the report does not split its processes' RSS, so how much of it they map is not known", humanize.Bytes(shmem)),
			Evidence: []string{fmt.Sprintf("%s: memory.stat shmem %d B; the report has no task table, or one without an rss_shmem column", source, shmem)},
			Advice:   []string{"Files in /dev/shm or another tmpfs stay charged with no process mapping them: find /dev/shm /run -xdev -type f -size +1M, in the container's mount namespace."},
		}}
	}
	for _, m := range members {
		mapped = addSat(mapped, m.ShmemMapBytes)
	}
	if unmapped := shmem - min(mapped, shmem); unmapped >= 16<<20 {
		sev := finding.Medium
		if g.Events["oom_kill"] > 0 || g.LimitBytes > 0 && unmapped*10 >= g.LimitBytes {
			sev = finding.High // it is what the limit was spent on
		}
		fs = append(fs, finding.Finding{
			ID: "shmem-unmapped", Severity: sev, Bytes: unmapped,
			Summary:  fmt.Sprintf("%s of shmem is charged to the cgroup but mapped by none of its %d processes: files in /dev/shm or another tmpfs, or memfds kept open", humanize.Bytes(unmapped), len(members)),
			Evidence: []string{fmt.Sprintf("%s: memory.stat shmem %d B; Σ RssShmem of the cgroup's processes %d B", source, shmem, mapped)},
			Advice: []string{
				"Find the files: find /dev/shm /run -xdev -type f -size +1M (in the container's mount namespace: nsenter -t PID -m); deleting them gives the memory back.",
				"No process's RSS shows this memory, so per-process tools (ps, top, memdiag explain) cannot find it: it counts against the limit all the same.",
			},
		})
	}
	if mapped > shmem+shmem/2 && mapped-shmem >= 16<<20 {
		// Several processes map the same pages (a database's shared
		// buffers): each one's RSS counts them, the cgroup once.
		fs = append(fs, finding.Finding{
			ID: "shmem-shared", Severity: finding.Info, Bytes: mapped - shmem,
			Summary:  fmt.Sprintf("the cgroup's %d processes map %s of shmem between them, but it is %s, charged once: summing their RSS counts it %.1f times over", len(members), humanize.Bytes(mapped), humanize.Bytes(shmem), float64(mapped)/float64(shmem)),
			Evidence: []string{fmt.Sprintf("%s: memory.stat shmem %d B; Σ RssShmem of the cgroup's processes %d B", source, shmem, mapped)},
			Advice:   []string{"Judge the processes by PSS (memdiag top shows Σ PSS) or the cgroup's own figures, not by Σ RSS; the shared memory's size is set where it is made (PostgreSQL: shared_buffers)."},
		})
	}
	return fs
}

// workingSetInflated is a working set that counts cache the kernel would
// reclaim before an OOM kill.
func (g *Group) workingSetInflated(source string) (finding.Finding, bool) {
	if g.LimitBytes == 0 {
		return finding.Finding{}, false
	}
	reclaim := g.ReclaimableBytes()
	if reclaim < g.LimitBytes/10 || g.WorkingSetBytes() <= g.UsageBytes-min(reclaim, g.UsageBytes) {
		return finding.Finding{}, false
	}
	inflated := g.WorkingSetBytes() - (g.UsageBytes - min(reclaim, g.UsageBytes))
	if inflated < g.LimitBytes/10 {
		return finding.Finding{}, false
	}
	return finding.Finding{
		ID: "working-set-inflated", Severity: finding.Info, Bytes: inflated,
		Summary:  fmt.Sprintf("the working set (%s, what kubectl top shows) counts %s of page cache and slab the kernel would reclaim before an OOM kill", humanize.Bytes(g.WorkingSetBytes()), humanize.Bytes(inflated)),
		Evidence: []string{fmt.Sprintf("%s: working set = usage %d − inactive_file %d; reclaimable %d B", source, g.UsageBytes, g.Stat["inactive_file"], reclaim)},
		Advice:   []string{"Alert on anonymous memory + shmem against the limit, not on the working set alone."},
	}, true
}
