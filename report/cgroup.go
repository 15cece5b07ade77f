package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/memcg"
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
}

// WriteCgroup renders v.
func WriteCgroup(w io.Writer, f Format, v *CgroupView, s Style) error {
	if f == FormatJSON {
		return WriteJSON(w, cgroupDocument(v))
	}
	g := v.Group
	t := &Table{Title: v.Title, Columns: []Column{{Header: "PART"}, {Header: "BYTES", Align: Right}, {Header: "%USAGE", Align: Right}, {Header: "WHAT"}}, HasTotal: true}
	for _, p := range g.Breakdown() {
		t.AddRow(p.Name, Bytes(p.Bytes), Percent(p.Bytes, g.UsageBytes), p.What)
	}
	t.AddRow("usage", Bytes(g.UsageBytes), "100.0 %", fmt.Sprintf("cgroup v%d %s", g.Version, usageFile(g.Version)))
	limit := "none"
	if g.LimitBytes > 0 {
		limit = fmt.Sprintf("%s (%s left)", Bytes(g.LimitBytes), Bytes(g.LimitBytes-min(g.UsageBytes, g.LimitBytes)))
	}
	t.Notes = append(t.Notes,
		"limit: "+limit,
		fmt.Sprintf("working set (cAdvisor, kubectl top: usage − inactive file): %s; reclaimable without swap (clean page cache, reclaimable slab): %s", Bytes(g.WorkingSetBytes()), Bytes(g.ReclaimableBytes())))
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
	tables := []*Table{t}
	if len(v.Members) > 0 {
		mt := &Table{Title: "processes", Columns: []Column{{Header: "PID", Align: Right}, {Header: "COMMAND"}, {Header: "RSS", Align: Right}, {Header: "ANON", Align: Right}, {Header: "SHMEM MAPPED", Align: Right}}}
		ms := append([]memcg.Member{}, v.Members...)
		sort.Slice(ms, func(i, j int) bool { return ms[i].RSSBytes > ms[j].RSSBytes })
		for _, m := range ms[:min(len(ms), 20)] {
			mt.AddRow(strconv.Itoa(m.PID), m.Command, Bytes(m.RSSBytes), Bytes(m.AnonBytes), Bytes(m.ShmemMapBytes))
		}
		if v.OOM != nil {
			mt.Notes = append(mt.Notes, fmt.Sprintf("killed: process %d (%s), anon %s, file %s, shmem %s", v.OOM.Victim.PID, v.OOM.Victim.Name,
				Bytes(v.OOM.Victim.AnonBytes), Bytes(v.OOM.Victim.FileBytes), Bytes(v.OOM.Victim.ShmemRSSBytes)))
		}
		tables = append(tables, mt)
	}
	if err := writeTables(w, f, tables, s); err != nil {
		return err
	}
	return writeFindings(w, f, v.Findings, s)
}

func usageFile(v int) string {
	if v == 1 {
		return "memory.usage_in_bytes"
	}
	return "memory.current"
}

type cgroupDoc struct {
	Schema           string            `json:"schema"`
	Source           string            `json:"source"`
	Path             string            `json:"path"`
	Version          int               `json:"version"`
	UsageBytes       uint64            `json:"usage_bytes"`
	LimitBytes       uint64            `json:"limit_bytes"`
	WorkingSetBytes  uint64            `json:"working_set_bytes"`
	ReclaimableBytes uint64            `json:"reclaimable_bytes"`
	Breakdown        []cgroupPartJSON  `json:"breakdown"`
	Stat             map[string]uint64 `json:"stat"`
	Events           map[string]uint64 `json:"events"`
	Processes        []memberJSON      `json:"processes"`
	Killed           *memberJSON       `json:"killed,omitempty"`
	Findings         []finding.Finding `json:"findings"`
}

type cgroupPartJSON struct {
	Name  string `json:"name"`
	Bytes uint64 `json:"bytes"`
	What  string `json:"what"`
}

type memberJSON struct {
	PID              int    `json:"pid"`
	Command          string `json:"command"`
	RSSBytes         uint64 `json:"rss_bytes"`
	AnonBytes        uint64 `json:"anon_bytes"`
	ShmemMappedBytes uint64 `json:"shmem_mapped_bytes"`
}

func cgroupDocument(v *CgroupView) *cgroupDoc {
	g := v.Group
	d := &cgroupDoc{Schema: CgroupSchema, Source: v.Source, Path: g.Path, Version: g.Version, UsageBytes: g.UsageBytes, LimitBytes: g.LimitBytes,
		WorkingSetBytes: g.WorkingSetBytes(), ReclaimableBytes: g.ReclaimableBytes(), Stat: g.Stat, Events: g.Events,
		Processes: []memberJSON{}, Findings: findingsJSON(v.Findings)}
	for _, p := range g.Breakdown() {
		d.Breakdown = append(d.Breakdown, cgroupPartJSON{p.Name, p.Bytes, p.What})
	}
	for _, m := range v.Members {
		d.Processes = append(d.Processes, memberJSON{m.PID, m.Command, m.RSSBytes, m.AnonBytes, m.ShmemMapBytes})
	}
	if v.OOM != nil {
		k := v.OOM.Victim
		d.Killed = &memberJSON{k.PID, k.Name, k.RSSBytes, k.AnonBytes, k.ShmemRSSBytes}
	}
	return d
}
