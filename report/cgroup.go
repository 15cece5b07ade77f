package report

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/pmap"
)

// CgroupSchema versions the JSON of `memdiag cgroup` and `memdiag oom`.
const CgroupSchema = "memdiag.cgroup/v1"

// CgroupView is a memory cgroup, read live or from an OOM report.
type CgroupView struct {
	Title    string
	Source   string
	Group    *memcg.Group
	Members  []memcg.Member
	Findings []finding.Finding
	// OOM is the kernel's report, for `memdiag oom`.
	OOM *memcg.OOMReport
	// KilledAt is when the OOM kill happened by the wall clock (zero when
	// the log does not tell), and KilledAtSource how that is known.
	KilledAt       time.Time
	KilledAtSource string
	// AnonByKind splits the anonymous memory of the largest processes.
	AnonByKind []MemberAnon
}

// MemberAnon is one process's anonymous memory by pmap class
// (glibc-arena, heap, anon, thread-stack), from its smaps.
type MemberAnon struct {
	PID       int                   `json:"pid"`
	Command   string                `json:"command"`
	AnonBytes uint64                `json:"anon_bytes"`
	ByKind    map[pmap.Class]uint64 `json:"by_kind"`
	Skipped   string                `json:"skipped,omitempty"`
}

// WriteCgroup renders v.
func WriteCgroup(w io.Writer, f Format, v *CgroupView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, cgroupDocument(v))
	case FormatOpenMetrics:
		return writeCgroupOpenMetrics(w, v)
	}
	g := v.Group
	tables := []*Table{cgroupUsageTable(v)}
	if len(v.Members) > 0 {
		mt := &Table{Title: "processes", Columns: []Column{{Header: "PID", Align: Right}, {Header: "COMMAND"}, {Header: "RSS", Align: Right}, {Header: "ANON", Align: Right}, {Header: "SHMEM MAPPED", Align: Right}}}
		ms := append([]memcg.Member{}, v.Members...)
		sort.Slice(ms, func(i, j int) bool { return ms[i].RSSBytes > ms[j].RSSBytes })
		split := false
		for _, m := range ms[:min(len(ms), 20)] {
			anon, shmem := Bytes(m.AnonBytes), Bytes(m.ShmemMapBytes)
			if m.SplitUnknown {
				anon, shmem = "-", "-"
			}
			split = split || m.SplitUnknown
			mt.AddRow(strconv.Itoa(m.PID), m.Command, Bytes(m.RSSBytes), anon, shmem)
		}
		if split {
			mt.Notes = append(mt.Notes, "-: the report's task table gives each process's RSS whole (an rss column, no rss_anon or rss_shmem)")
		}
		if k := v.OOM; k != nil && k.Killed {
			shmem := "unknown"
			if k.Victim.HasSplit {
				shmem = Bytes(k.Victim.ShmemRSSBytes)
			}
			mt.Notes = append(mt.Notes, fmt.Sprintf("killed: process %d (%s), anon %s, file %s, shmem %s", k.Victim.PID, k.Victim.Name,
				Bytes(k.Victim.AnonBytes), Bytes(k.Victim.FileBytes), shmem))
		}
		tables = append(tables, mt)
	}
	if len(v.AnonByKind) > 0 {
		at := &Table{Title: "anonymous memory of the largest processes, by kind (smaps)",
			Columns: []Column{{Header: "PID", Align: Right}, {Header: "COMMAND"}, {Header: "ANON", Align: Right}, {Header: "GLIBC ARENAS", Align: Right},
				{Header: "[HEAP]", Align: Right}, {Header: "OTHER ANON", Align: Right}, {Header: "STACKS", Align: Right}, {Header: "NOTE"}}}
		var sum uint64
		for _, a := range v.AnonByKind {
			sum += a.AnonBytes
			at.AddRow(strconv.Itoa(a.PID), a.Command, Bytes(a.AnonBytes), Bytes(a.ByKind[pmap.ClassGlibcArena]), Bytes(a.ByKind[pmap.ClassHeap]),
				Bytes(a.ByKind[pmap.ClassAnon]+a.ByKind[jmx.ClassJVMHeap]), Bytes(a.ByKind[pmap.ClassThreadStack]), a.Skipped)
		}
		cgAnon := g.Stat["rss"] + g.Stat["anon"]
		if sum > cgAnon {
			at.Notes = append(at.Notes, fmt.Sprintf("these processes' anonymous RSS (%s) exceeds the cgroup's anonymous memory (%s): a page shared after fork counts once per process, and pages charged before a process moved in count in its former cgroup", Bytes(sum), Bytes(cgAnon)))
		} else {
			at.Notes = append(at.Notes, fmt.Sprintf("these processes hold %s of the cgroup's %s anonymous memory; the rest is its other processes'", Bytes(sum), Bytes(cgAnon)))
		}
		at.Notes = append(at.Notes, "memdiag explain --pid PID --capture-malloc-info splits one process further: malloc in use and retained, the JVM's heap and non-heap, leaks")
		tables = append(tables, at)
	}
	if err := writeTables(w, f, tables, s); err != nil {
		return err
	}
	return writeFindings(w, f, v.Findings, s)
}

// cgroupUsageTable is the cgroup's usage split into parts, with its
// limit, working set, events and, for an OOM report, how it is trusted.
func cgroupUsageTable(v *CgroupView) *Table {
	g := v.Group
	t := &Table{Title: v.Title, Columns: []Column{{Header: "PART"}, {Header: "BYTES", Align: Right}, {Header: "%USAGE", Align: Right}, {Header: "WHAT"}}, HasTotal: true}
	known := g.UsageUnknown == ""
	for _, p := range g.Breakdown() {
		t.AddRow(p.Name, Bytes(p.Bytes), Percent(p.Bytes, g.UsageBytes), p.What)
	}
	limit, workingSet, reclaimable := "none", Bytes(g.WorkingSetBytes()), Bytes(g.ReclaimableBytes())
	if !known && len(g.Stat) == 0 {
		reclaimable = "unknown"
	}
	if known {
		t.AddRow("usage", Bytes(g.UsageBytes), "100.0 %", fmt.Sprintf("cgroup v%d %s", g.Version, usageFile(g.Version)))
	} else {
		t.AddRow("usage", "unknown", "-", g.UsageUnknown)
		limit, workingSet = "unknown", "unknown"
	}
	if known && g.LimitBytes > 0 {
		limit = fmt.Sprintf("%s (%s left)", Bytes(g.LimitBytes), Bytes(g.LimitBytes-min(g.UsageBytes, g.LimitBytes)))
	}
	t.Notes = append(t.Notes,
		"limit: "+limit,
		fmt.Sprintf("working set (cAdvisor, kubectl top: usage − inactive file): %s; reclaimable without swap (clean page cache, reclaimable slab): %s", workingSet, reclaimable))
	if r := v.OOM; r != nil && r.RAMBytes > 0 {
		host := "host at the kill: RAM " + Bytes(r.RAMBytes)
		if r.HasSwap {
			host += fmt.Sprintf(", swap %s free of %s", Bytes(r.SwapFreeBytes), Bytes(r.SwapTotalBytes))
		}
		t.Notes = append(t.Notes, host+` (the report's "pages RAM" and swap lines)`)
	}
	if len(g.Events) > 0 {
		keys := make([]string, 0, len(g.Events))
		for k := range g.Events {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ev := ""
		for _, k := range keys {
			ev += fmt.Sprintf(" %s=%d", k, g.Events[k])
		}
		t.Notes = append(t.Notes, "events:"+ev)
	}
	if v.OOM != nil && v.OOM.Trust != "" {
		t.Notes = append(t.Notes, "report: "+v.OOM.Trust)
	}
	if v.OOM != nil && v.KilledAtSource != "" {
		t.Notes = append(t.Notes, "time of the kill: "+v.KilledAtSource)
	}
	return t
}

func usageFile(v int) string {
	if v == 1 {
		return "memory.usage_in_bytes"
	}
	return "memory.current"
}

type cgroupDoc struct {
	Schema  string `json:"schema"`
	Source  string `json:"source"`
	Path    string `json:"path"`
	Version int    `json:"version,omitempty"`
	// UsageBytes, LimitBytes and WorkingSetBytes are nil when the OOM
	// report does not give them (absent, not 0), and UsageUnknown says why;
	// ReclaimableBytes is nil when it has no statistics either.
	UsageBytes       *uint64           `json:"usage_bytes,omitempty"`
	LimitBytes       *uint64           `json:"limit_bytes,omitempty"`
	WorkingSetBytes  *uint64           `json:"working_set_bytes,omitempty"`
	UsageUnknown     string            `json:"usage_unknown,omitempty"`
	ReclaimableBytes *uint64           `json:"reclaimable_bytes,omitempty"`
	Breakdown        []cgroupPartJSON  `json:"breakdown"`
	Stat             map[string]uint64 `json:"stat"`
	Events           map[string]uint64 `json:"events"`
	Processes        []memberJSON      `json:"processes"`
	Killed           *memberJSON       `json:"killed,omitempty"`
	// OOMVerified and OOMTrust: whether the kernel's oom_kill counters
	// back the report, and why (memdiag oom only).
	OOMVerified *bool  `json:"oom_verified,omitempty"`
	OOMTrust    string `json:"oom_trust,omitempty"`
	// OOMGlobal: the whole host ran out of memory, not a cgroup; the
	// host's RAM and swap are the report's, where it gives them.
	OOMGlobal          bool    `json:"oom_global,omitempty"`
	OOMConstraint      string  `json:"oom_constraint,omitempty"`
	HostRAMBytes       uint64  `json:"host_ram_bytes,omitempty"`
	HostSwapTotalBytes *uint64 `json:"host_swap_total_bytes,omitempty"`
	HostSwapFreeBytes  *uint64 `json:"host_swap_free_bytes,omitempty"`
	// KilledAt (RFC 3339) and KilledAtSource: when the kill happened, and
	// how that is known; absent when the log does not tell.
	KilledAt       string            `json:"killed_at,omitempty"`
	KilledAtSource string            `json:"killed_at_source,omitempty"`
	AnonByKind     []MemberAnon      `json:"anon_by_kind"`
	Findings       []finding.Finding `json:"findings"`
}

type cgroupPartJSON struct {
	Name  string `json:"name"`
	Bytes uint64 `json:"bytes"`
	What  string `json:"what"`
}

// memberJSON is a process; anon_bytes and shmem_mapped_bytes are absent
// when an OOM report's task table does not split RSS.
type memberJSON struct {
	PID              int     `json:"pid"`
	Command          string  `json:"command"`
	RSSBytes         uint64  `json:"rss_bytes"`
	AnonBytes        *uint64 `json:"anon_bytes,omitempty"`
	ShmemMappedBytes *uint64 `json:"shmem_mapped_bytes,omitempty"`
}

func newMemberJSON(pid int, command string, rss, anon, shmem uint64, anonKnown, shmemKnown bool) memberJSON {
	m := memberJSON{PID: pid, Command: command, RSSBytes: rss}
	if anonKnown {
		m.AnonBytes = &anon
	}
	if shmemKnown {
		m.ShmemMappedBytes = &shmem
	}
	return m
}

func cgroupDocument(v *CgroupView) *cgroupDoc {
	g := v.Group
	d := &cgroupDoc{Schema: CgroupSchema, Source: v.Source, Path: g.Path, Version: g.Version, UsageUnknown: g.UsageUnknown, Breakdown: []cgroupPartJSON{},
		Stat: g.Stat, Events: g.Events,
		Processes: []memberJSON{}, AnonByKind: append([]MemberAnon{}, v.AnonByKind...), Findings: findingsJSON(v.Findings)}
	if g.UsageUnknown == "" {
		usage, limit, ws := g.UsageBytes, g.LimitBytes, g.WorkingSetBytes()
		d.UsageBytes, d.LimitBytes, d.WorkingSetBytes = &usage, &limit, &ws
	}
	if g.UsageUnknown == "" || len(g.Stat) > 0 {
		reclaimable := g.ReclaimableBytes()
		d.ReclaimableBytes = &reclaimable
	}
	for _, p := range g.Breakdown() {
		d.Breakdown = append(d.Breakdown, cgroupPartJSON{p.Name, p.Bytes, p.What})
	}
	for _, m := range v.Members {
		d.Processes = append(d.Processes, newMemberJSON(m.PID, m.Command, m.RSSBytes, m.AnonBytes, m.ShmemMapBytes, !m.SplitUnknown, !m.SplitUnknown))
	}
	if v.OOM != nil {
		if k := v.OOM.Victim; v.OOM.Killed {
			killed := newMemberJSON(k.PID, k.Name, k.RSSBytes, k.AnonBytes, k.ShmemRSSBytes, true, k.HasSplit) // the kill line gives anon
			d.Killed = &killed
		}
		verified := v.OOM.Verified
		d.OOMVerified, d.OOMTrust = &verified, v.OOM.Trust
		d.OOMGlobal, d.OOMConstraint, d.HostRAMBytes = v.OOM.Global, v.OOM.Constraint, v.OOM.RAMBytes
		if v.OOM.HasSwap {
			total, free := v.OOM.SwapTotalBytes, v.OOM.SwapFreeBytes
			d.HostSwapTotalBytes, d.HostSwapFreeBytes = &total, &free
		}
		if !v.KilledAt.IsZero() {
			d.KilledAt, d.KilledAtSource = v.KilledAt.Format(time.RFC3339), v.KilledAtSource
		}
	}
	return d
}

// writeCgroupOpenMetrics writes the cgroup for a textfile collector: the
// names cAdvisor uses (labelled id, the cgroup's path, as cAdvisor does)
// beside memdiag's own.
func writeCgroupOpenMetrics(w io.Writer, v *CgroupView) error {
	g := v.Group
	bw := bufio.NewWriter(w)
	id := "id=\"" + escapeLabel(g.Path) + "\""
	gauge := func(name, help string, val uint64) {
		unit := ""
		if strings.HasSuffix(name, "_bytes") {
			unit = "# UNIT " + name + " bytes\n"
		}
		fmt.Fprintf(bw, "# TYPE %s gauge\n%s# HELP %s %s\n%s{%s} %d\n", name, unit, name, help, name, id, val)
	}
	// Figures not known are left out, not written 0: an absent series is
	// how OpenMetrics says "unknown".
	known, hasStat := g.UsageUnknown == "", g.UsageUnknown == "" || len(g.Stat) > 0
	if known {
		gauge("container_memory_usage_bytes", "Usage as cAdvisor reports it (memory.usage_in_bytes / memory.current).", g.UsageBytes)
		gauge("container_memory_working_set_bytes", "Usage − inactive file, as cAdvisor and kubectl top compute it.", g.WorkingSetBytes())
	}
	if hasStat {
		gauge("container_memory_rss", "Anonymous memory (cAdvisor's rss).", g.Stat["rss"]+g.Stat["anon"])
		gauge("container_memory_cache", "Page cache including shmem (cAdvisor's cache).", g.Stat["cache"]+g.Stat["file"])
	}
	if known {
		gauge("container_spec_memory_limit_bytes", "The limit; 0 for none.", g.LimitBytes)
	}
	if hasStat {
		gauge("memdiag_cgroup_reclaimable_bytes", "Clean page cache and reclaimable slab: what the kernel reclaims before an OOM kill.", g.ReclaimableBytes())
		bw.WriteString("# TYPE memdiag_cgroup_part_bytes gauge\n# UNIT memdiag_cgroup_part_bytes bytes\n# HELP memdiag_cgroup_part_bytes Usage broken down; the parts sum to container_memory_usage_bytes.\n")
		for _, p := range g.Breakdown() {
			fmt.Fprintf(bw, "memdiag_cgroup_part_bytes{%s,part=\"%s\"} %d\n", id, p.Name, p.Bytes)
		}
	}
	fmt.Fprintf(bw, "# TYPE memdiag_cgroup_oom_kills counter\n# HELP memdiag_cgroup_oom_kills OOM kills in the cgroup (memory.events oom_kill, v1 oom_control).\nmemdiag_cgroup_oom_kills_total{%s} %d\n", id, g.Events["oom_kill"])
	bw.WriteString("# TYPE memdiag_cgroup_finding_bytes gauge\n# UNIT memdiag_cgroup_finding_bytes bytes\n# HELP memdiag_cgroup_finding_bytes Bytes each finding is about.\n")
	for _, f := range v.Findings {
		fmt.Fprintf(bw, "memdiag_cgroup_finding_bytes{%s,finding=\"%s\",severity=\"%s\"} %d\n", id, escapeLabel(f.ID), f.Severity, f.Bytes)
	}
	bw.WriteString("# EOF\n")
	return bw.Flush()
}
