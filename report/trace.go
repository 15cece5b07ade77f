package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/syscalltrace"
)

// TraceSchema versions the JSON of `memdiag trace`.
const TraceSchema = "memdiag.trace/v1"

// TraceView is everything `memdiag trace` shows.
type TraceView struct {
	Source      string
	Format      string
	Replay      *syscalltrace.Replay
	Outstanding []*syscalltrace.Mapping
	Groups      []syscalltrace.Group
	GroupBy     syscalltrace.GroupBy
	// Resident holds each outstanding mapping's resident bytes after a
	// smaps join; nil without one.
	Resident map[*syscalltrace.Mapping]uint64
	Findings []finding.Finding
	Notes    []string
	// GroupLimit caps the groups table (0: all).
	GroupLimit int
}

// WriteTrace renders v in format f.
func WriteTrace(w io.Writer, f Format, v *TraceView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, traceDocument(v))
	case FormatHTML:
		return writeTraceHTML(w, v)
	}
	if err := writeTables(w, f, traceTables(v, s), s); err != nil {
		return err
	}
	return writeFindings(w, f, v.Findings, s)
}

// TraceTotals sums outstanding mappings.
type TraceTotals struct {
	Count                                                int
	Bytes, AnonBytes, FileBytes, ReleasedBytes, Resident uint64
}

// SumOutstanding adds up outstanding mappings.
func SumOutstanding(ms []*syscalltrace.Mapping, resident map[*syscalltrace.Mapping]uint64) TraceTotals {
	var t TraceTotals
	for _, m := range ms {
		t.Count++
		t.Bytes += m.Len()
		if m.Anonymous {
			t.AnonBytes += m.Len()
		} else {
			t.FileBytes += m.Len()
		}
		t.ReleasedBytes += m.ReleasedBytes
		t.Resident += resident[m]
	}
	return t
}

func traceTables(v *TraceView, s Style) []*Table {
	st := &v.Replay.Stats
	tot := SumOutstanding(v.Outstanding, v.Resident)
	summary := &Table{
		Title:   fmt.Sprintf("memdiag trace: %s (%s, %d memory calls)", v.Source, v.Format, st.Events),
		Columns: []Column{{Header: "WHAT"}, {Header: "COUNT", Align: Right}, {Header: "BYTES", Align: Right}},
	}
	summary.AddRow("outstanding: mapped, never unmapped", strconv.Itoa(tot.Count), Bytes(tot.Bytes))
	summary.AddRow("  anonymous", "", Bytes(tot.AnonBytes))
	summary.AddRow("  file-backed", "", Bytes(tot.FileBytes))
	if tot.ReleasedBytes > 0 {
		summary.AddRow("  of which madvise-released", "", Bytes(tot.ReleasedBytes))
	}
	if v.Resident != nil {
		summary.AddRow("  resident now (smaps)", "", Bytes(tot.Resident))
	}
	summary.AddRow("mapped over the trace", strconv.Itoa(st.Calls[syscalltrace.CallMmap]+st.Calls[syscalltrace.CallMremap]), Bytes(st.MappedBytes))
	summary.AddRow("unmapped over the trace", strconv.Itoa(st.Calls[syscalltrace.CallMunmap]), Bytes(st.UnmappedBytes))
	if st.CommittedBytes > 0 {
		summary.AddRow("committed in earlier reservations (mprotect)", "", Bytes(st.CommittedBytes))
	}
	if st.DecommittedBytes > 0 {
		summary.AddRow("  given back (mprotect PROT_NONE)", "", Bytes(st.DecommittedBytes))
	}
	summary.AddRow("peak mapped by traced calls", "", Bytes(st.PeakBytes))
	summary.AddRow("pre-existing ranges released", strconv.Itoa(st.PreexistingOps), Bytes(st.PreexistingBytes))
	summary.AddRow("failed calls (changed nothing)", strconv.Itoa(st.Failed), "")
	if b := st.BrkBytes + v.Replay.LiveBrkBytes(); b > 0 {
		summary.AddRow("brk heap growth", "", Bytes(b))
	}
	if s.Color && len(v.Replay.Timeline()) > 1 {
		summary.Notes = append(summary.Notes, "mapped bytes over the trace: "+sparkline(v.Replay.Timeline()))
	}
	summary.Notes = append(summary.Notes, v.Notes...)

	groups := &Table{
		Title:   "outstanding by " + string(v.GroupBy),
		Columns: []Column{{Header: "COUNT", Align: Right}, {Header: "BYTES", Align: Right}},
	}
	// The groups are sorted by what can cost RSS: resident bytes with a
	// smaps join, else writable anonymous bytes. That key is a column.
	if v.Resident != nil {
		groups.Columns = append(groups.Columns, Column{Header: "RESIDENT", Align: Right})
		groups.Notes = append(groups.Notes, "sorted by RESIDENT (what of them is in RAM now, from smaps), then BYTES")
	} else {
		groups.Columns = append(groups.Columns, Column{Header: "WRITABLE", Align: Right})
		groups.Notes = append(groups.Notes, "sorted by WRITABLE (anonymous bytes mapped writable: what can fill RSS, unlike a PROT_NONE reservation), then BYTES")
	}
	groups.Columns = append(groups.Columns, Column{Header: "KIND"}, Column{Header: strings.ToUpper(string(v.GroupBy))})
	shown := v.Groups
	if v.GroupLimit > 0 && len(shown) > v.GroupLimit {
		shown = shown[:v.GroupLimit]
	}
	for _, g := range shown {
		key := g.Key
		if v.GroupBy == syscalltrace.GroupStack && len(g.Frames) > 0 {
			key = syscalltrace.StackLabel(g.Frames)
		}
		row := []string{strconv.Itoa(g.Count), Bytes(g.Bytes)}
		if v.Resident != nil {
			row = append(row, Bytes(g.ResidentBytes))
		} else {
			row = append(row, Bytes(g.WritableAnonBytes))
		}
		kind := g.Kind
		if kind == "" {
			kind = "-"
		}
		groups.AddRow(append(row, kind, key)...)
	}
	if len(shown) < len(v.Groups) {
		groups.Notes = append(groups.Notes, fmt.Sprintf("showing %d of %d groups; -o json lists all", len(shown), len(v.Groups)))
	}
	return []*Table{summary, groups}
}

func sparkline(ps []syscalltrace.Point) string {
	const bars = "▁▂▃▄▅▆▇█"
	const width = 60
	var peak uint64
	for _, p := range ps {
		peak = max(peak, p.Bytes)
	}
	if peak == 0 {
		return ""
	}
	var b strings.Builder
	runes := []rune(bars)
	for i := 0; i < width && i < len(ps); i++ {
		p := ps[i*len(ps)/min(width, len(ps))]
		b.WriteRune(runes[int(float64(p.Bytes)/float64(peak)*float64(len(runes)-1))])
	}
	return b.String() + " peak " + Bytes(peak)
}

type traceDoc struct {
	Schema    string `json:"schema"`
	Source    string `json:"source"`
	Format    string `json:"format"`
	Events    int    `json:"events"`
	Processes []int  `json:"processes"`
	// SpacesAre says what the ids of processes (and each mapping's pid)
	// are: "processes" when tasks share their process's address space,
	// "tasks" with --per-process, where every thread counts alone.
	SpacesAre   string            `json:"spaces_are"`
	Outstanding outstandingJSON   `json:"outstanding"`
	PeakBytes   uint64            `json:"peak_bytes"`
	PeakTime    *float64          `json:"peak_time,omitempty"`
	Churn       churnJSON         `json:"churn"`
	Preexisting preexistJSON      `json:"preexisting"`
	FailedCalls int               `json:"failed_calls"`
	BrkBytes    uint64            `json:"brk_bytes"`
	GroupBy     string            `json:"group_by"`
	Groups      []groupJSON       `json:"groups"`
	Timeline    []pointJSON       `json:"timeline"`
	Mappings    []traceMapJSON    `json:"mappings"`
	Findings    []finding.Finding `json:"findings"`
	Notes       []string          `json:"notes"`
}

type outstandingJSON struct {
	Count         int     `json:"count"`
	Bytes         uint64  `json:"bytes"`
	AnonBytes     uint64  `json:"anon_bytes"`
	FileBytes     uint64  `json:"file_bytes"`
	ReleasedBytes uint64  `json:"released_bytes"`
	ResidentBytes *uint64 `json:"resident_bytes,omitempty"`
}

type churnJSON struct {
	MappedBytes   uint64 `json:"mapped_bytes"`
	UnmappedBytes uint64 `json:"unmapped_bytes"`
	Mmap          int    `json:"mmap_calls"`
	Munmap        int    `json:"munmap_calls"`
	Mremap        int    `json:"mremap_calls"`
	Mprotect      int    `json:"mprotect_calls"`
	// Committed in reservations made before the trace, and given back.
	CommittedBytes   uint64 `json:"committed_bytes"`
	DecommittedBytes uint64 `json:"decommitted_bytes"`
}

type preexistJSON struct {
	Ops   int    `json:"ops"`
	Bytes uint64 `json:"bytes"`
}

type frameJSON struct {
	Func   string `json:"func"`
	Module string `json:"module"`
	Addr   string `json:"addr"`
}

type groupJSON struct {
	Key           string  `json:"key"`
	Label         string  `json:"label"`
	Kind          string  `json:"kind,omitempty"`
	Count         int     `json:"count"`
	Bytes         uint64  `json:"bytes"`
	ResidentBytes *uint64 `json:"resident_bytes,omitempty"`
	// WritableAnonBytes is the groups' sort key without a smaps join.
	WritableAnonBytes uint64      `json:"writable_anon_bytes"`
	Frames            []frameJSON `json:"frames"`
}

type pointJSON struct {
	Event int     `json:"event"`
	Time  float64 `json:"time"`
	Bytes uint64  `json:"bytes"`
}

type traceMapJSON struct {
	PID           int         `json:"pid"`
	TID           int         `json:"tid"`
	Start         string      `json:"start"`
	End           string      `json:"end"`
	SizeBytes     uint64      `json:"size_bytes"`
	Prot          string      `json:"prot"`
	Flags         string      `json:"flags"`
	Name          string      `json:"name"`
	Anonymous     bool        `json:"anonymous"`
	Line          int         `json:"line"`
	Time          *float64    `json:"time,omitempty"`
	EndedBy       string      `json:"ended_by,omitempty"`
	ReleasedBytes uint64      `json:"released_bytes"`
	ResidentBytes *uint64     `json:"resident_bytes,omitempty"`
	Committed     bool        `json:"committed,omitempty"`
	Frames        []frameJSON `json:"frames"`
}

func framesJSON(fs []syscalltrace.Frame) []frameJSON {
	out := make([]frameJSON, len(fs))
	for i, f := range fs {
		out[i] = frameJSON{Func: f.Func, Module: f.Module, Addr: Hex(f.Addr)}
	}
	return out
}

func traceDocument(v *TraceView) *traceDoc {
	st := &v.Replay.Stats
	tot := SumOutstanding(v.Outstanding, v.Resident)
	d := &traceDoc{
		Schema: TraceSchema, Source: v.Source, Format: v.Format, Events: st.Events,
		Processes: append([]int{}, v.Replay.Spaces()...),
		SpacesAre: map[bool]string{true: "processes", false: "tasks"}[v.Replay.SharedSpace],
		Outstanding: outstandingJSON{Count: tot.Count, Bytes: tot.Bytes, AnonBytes: tot.AnonBytes, FileBytes: tot.FileBytes,
			ReleasedBytes: tot.ReleasedBytes},
		PeakBytes: st.PeakBytes,
		Churn: churnJSON{st.MappedBytes, st.UnmappedBytes, st.Calls[syscalltrace.CallMmap], st.Calls[syscalltrace.CallMunmap], st.Calls[syscalltrace.CallMremap],
			st.Calls[syscalltrace.CallMprotect], st.CommittedBytes, st.DecommittedBytes},
		Preexisting: preexistJSON{st.PreexistingOps, st.PreexistingBytes},
		FailedCalls: st.Failed,
		BrkBytes:    st.BrkBytes + v.Replay.LiveBrkBytes(),
		GroupBy:     string(v.GroupBy),
		Groups:      []groupJSON{},
		Timeline:    []pointJSON{},
		Mappings:    []traceMapJSON{},
		Findings:    findingsJSON(v.Findings),
		Notes:       append([]string{}, v.Notes...),
	}
	if v.Resident != nil {
		r := tot.Resident
		d.Outstanding.ResidentBytes = &r
	}
	if st.PeakBytes > 0 && st.PeakTime != 0 {
		t := st.PeakTime
		d.PeakTime = &t
	}
	for _, g := range v.Groups {
		gj := groupJSON{Key: g.Key, Label: g.Key, Kind: g.Kind, Count: g.Count, Bytes: g.Bytes, WritableAnonBytes: g.WritableAnonBytes, Frames: framesJSON(g.Frames)}
		if v.GroupBy == syscalltrace.GroupStack && len(g.Frames) > 0 {
			gj.Label = syscalltrace.StackLabel(g.Frames)
		}
		if v.Resident != nil {
			r := g.ResidentBytes
			gj.ResidentBytes = &r
		}
		d.Groups = append(d.Groups, gj)
	}
	for _, p := range v.Replay.Timeline() {
		d.Timeline = append(d.Timeline, pointJSON{p.Event, p.Time, p.Bytes})
	}
	for _, m := range v.Outstanding {
		name := m.Path
		if name == "" && !m.Anonymous {
			name = fmt.Sprintf("fd %d", m.FD)
		}
		mj := traceMapJSON{PID: m.Space, TID: m.TID, Start: Hex(m.Start), End: Hex(m.End), SizeBytes: m.Len(), Prot: m.Prot,
			Flags: m.FlagsText, Name: name, Anonymous: m.Anonymous, Line: m.Line, EndedBy: m.EndedBy,
			ReleasedBytes: m.ReleasedBytes, Committed: m.Committed, Frames: framesJSON(m.Frames)}
		if m.HasTime {
			t := m.Time
			mj.Time = &t
		}
		if v.Resident != nil {
			r := v.Resident[m]
			mj.ResidentBytes = &r
		}
		d.Mappings = append(d.Mappings, mj)
	}
	return d
}
