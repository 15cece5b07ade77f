package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/mallocinfo"
)

// MallocInfoSchema versions the JSON of `memdiag mallocinfo`.
const MallocInfoSchema = "memdiag.mallocinfo/v1"

// MallocInfoView is everything `memdiag mallocinfo` shows.
type MallocInfoView struct {
	Source string
	PID    int // 0 when read from a file
	// Snapshots in input order; only the last keeps its size-class bins.
	Snapshots []*mallocinfo.Snapshot
	Series    *mallocinfo.Series // nil with fewer than two snapshots
	Findings  []finding.Finding
	// ArenaLimit caps the arena table (0: all).
	ArenaLimit int
}

// WriteMallocInfo renders v in format f.
func WriteMallocInfo(w io.Writer, f Format, v *MallocInfoView, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, mallocInfoDocument(v))
	}
	if err := writeTables(w, f, mallocInfoTables(v), s); err != nil {
		return err
	}
	return writeFindings(w, f, v.Findings, s)
}

func mallocInfoTables(v *MallocInfoView) []*Table {
	last := v.Snapshots[len(v.Snapshots)-1]
	title := "memdiag mallocinfo: " + v.Source
	if v.PID != 0 {
		title = fmt.Sprintf("memdiag mallocinfo: process %d", v.PID)
	}
	if len(v.Snapshots) > 1 {
		title += fmt.Sprintf(" — last of %d snapshots (line %d)", len(v.Snapshots), last.Line)
	}
	arenas := &Table{
		Title: title,
		Columns: []Column{
			{Header: "ARENA"}, {Header: "CURRENT", Align: Right}, {Header: "IN USE", Align: Right},
			{Header: "FREE", Align: Right}, {Header: "FAST", Align: Right}, {Header: "TOP", Align: Right},
			{Header: "RETAINED", Align: Right}, {Header: "%FREE", Align: Right}, {Header: "HEAPS", Align: Right},
		},
		HasTotal: true,
	}
	ordered := last.ByRetained()
	shown := ordered
	if v.ArenaLimit > 0 && len(shown) > v.ArenaLimit {
		shown = shown[:v.ArenaLimit]
	}
	for _, a := range shown {
		name := strconv.Itoa(a.Nr)
		heaps := strconv.FormatUint(a.Subheaps, 10)
		if a.Main {
			name += " (main)"
			heaps = "brk"
		}
		arenas.AddRow(name, Bytes(a.SystemCurrentBytes), Bytes(a.InUseBytes), Bytes(a.FreeBytes()),
			Bytes(a.FreeFastBytes), Bytes(a.TopBytes), Bytes(a.RetainedFreeBytes),
			Percent(a.FreeBytes(), a.SystemCurrentBytes), heaps)
	}
	t := &last.Totals
	arenas.AddRow(fmt.Sprintf("total (%d)", t.Arenas), Bytes(t.SystemCurrentBytes), Bytes(t.InUseBytes), Bytes(t.FreeBytes),
		Bytes(t.FreeFastBytes), Bytes(t.TopBytes), Bytes(t.RetainedFreeBytes), Percent(t.FreeBytes, t.SystemCurrentBytes), "")
	if len(shown) < len(ordered) {
		arenas.Notes = append(arenas.Notes, fmt.Sprintf("showing %d of %d arenas by retained free; --all-arenas shows every one", len(shown), len(ordered)))
	}
	arenas.Notes = append(arenas.Notes, fmt.Sprintf("mmapped chunks (outside the arenas): %d, %s", t.MmapCount, Bytes(t.MmapBytes)))
	if last.Label != "" {
		arenas.Notes = append(arenas.Notes, "logged after: "+last.Label)
	}
	for _, w := range last.Warnings {
		arenas.Notes = append(arenas.Notes, "warning: "+w)
	}
	tables := []*Table{arenas}
	if v.Series == nil {
		return tables
	}
	series := &Table{
		Title: "over time",
		Columns: []Column{
			{Header: "#", Align: Right}, {Header: "LINE", Align: Right}, {Header: "ARENAS", Align: Right},
			{Header: "CURRENT", Align: Right}, {Header: "CHANGE", Align: Right}, {Header: "RETAINED", Align: Right},
			{Header: "NEW ARENAS"}, {Header: "GREW MOST"}, {Header: "LOGGED AFTER"},
		},
	}
	for _, st := range v.Series.Steps {
		grew := ""
		if st.GrewMost >= 0 {
			grew = fmt.Sprintf("arena %d +%s", st.GrewMost, Bytes(uint64(st.GrewMostBytes)))
		}
		series.AddRow(strconv.Itoa(st.Index+1), strconv.Itoa(st.Line), strconv.Itoa(st.Arenas), Bytes(st.SystemCurrentBytes),
			signedBytes(st.DeltaBytes), Bytes(st.RetainedFreeBytes), joinInts(st.NewArenas), grew, st.Label)
	}
	return append(tables, series)
}

func signedBytes(d int64) string {
	switch {
	case d > 0:
		return "+" + Bytes(uint64(d))
	case d < 0:
		return "-" + Bytes(uint64(-d))
	}
	return "0 B"
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

type mallocInfoDoc struct {
	Schema    string            `json:"schema"`
	Source    string            `json:"source"`
	PID       int               `json:"pid,omitempty"`
	Snapshots []snapshotJSON    `json:"snapshots"`
	Series    *seriesJSON       `json:"series,omitempty"`
	Findings  []finding.Finding `json:"findings"`
}

type snapshotJSON struct {
	Line     int         `json:"line"`
	Label    string      `json:"label"`
	Arenas   []arenaJSON `json:"arenas"`
	Totals   totalsJSON  `json:"totals"`
	Warnings []string    `json:"warnings"`
}

type arenaJSON struct {
	Nr                 int       `json:"nr"`
	Main               bool      `json:"main"`
	SystemCurrentBytes uint64    `json:"system_current_bytes"`
	SystemMaxBytes     uint64    `json:"system_max_bytes"`
	FreeFastBytes      uint64    `json:"free_fast_bytes"`
	FreeRestBytes      uint64    `json:"free_rest_bytes"`
	UnsortedBytes      uint64    `json:"unsorted_bytes"`
	TopBytes           uint64    `json:"top_bytes"`
	RetainedFreeBytes  uint64    `json:"retained_free_bytes"`
	InUseBytes         uint64    `json:"in_use_bytes"`
	Subheaps           uint64    `json:"subheaps"`
	Bins               []binJSON `json:"bins,omitempty"`
}

type binJSON struct {
	FromBytes  uint64 `json:"from_bytes"`
	ToBytes    uint64 `json:"to_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
	Count      uint64 `json:"count"`
}

type totalsJSON struct {
	Arenas             int    `json:"arenas"`
	SystemCurrentBytes uint64 `json:"system_current_bytes"`
	FreeBytes          uint64 `json:"free_bytes"`
	FreeFastBytes      uint64 `json:"free_fast_bytes"`
	TopBytes           uint64 `json:"top_bytes"`
	RetainedFreeBytes  uint64 `json:"retained_free_bytes"`
	InUseBytes         uint64 `json:"in_use_bytes"`
	MmapBytes          uint64 `json:"mmap_bytes"`
	MmapCount          uint64 `json:"mmap_count"`
}

type seriesJSON struct {
	Steps  []stepJSON         `json:"steps"`
	Arenas []arenaHistoryJSON `json:"arenas"`
}

type stepJSON struct {
	Index              int    `json:"index"`
	Line               int    `json:"line"`
	Label              string `json:"label"`
	Arenas             int    `json:"arenas"`
	SystemCurrentBytes uint64 `json:"system_current_bytes"`
	DeltaBytes         int64  `json:"delta_bytes"`
	RetainedFreeBytes  uint64 `json:"retained_free_bytes"`
	InUseBytes         uint64 `json:"in_use_bytes"`
	NewArenas          []int  `json:"new_arenas"`
	GrewMost           *int   `json:"grew_most,omitempty"`
	GrewMostBytes      int64  `json:"grew_most_bytes"`
}

type arenaHistoryJSON struct {
	Nr                int     `json:"nr"`
	FirstSnapshot     int     `json:"first_snapshot"`
	FirstBytes        uint64  `json:"first_bytes"`
	MaxBytes          uint64  `json:"max_bytes"`
	LastBytes         uint64  `json:"last_bytes"`
	LastRetainedBytes uint64  `json:"last_retained_free_bytes"`
	LastFreeShare     float64 `json:"last_free_share"`
	PresentAtEnd      bool    `json:"present_at_end"`
}

func mallocInfoDocument(v *MallocInfoView) *mallocInfoDoc {
	d := &mallocInfoDoc{Schema: MallocInfoSchema, Source: v.Source, PID: v.PID, Findings: findingsJSON(v.Findings)}
	for _, s := range v.Snapshots {
		sj := snapshotJSON{Line: s.Line, Label: s.Label, Arenas: []arenaJSON{}, Warnings: append([]string{}, s.Warnings...)}
		for _, a := range s.Arenas {
			aj := arenaJSON{
				Nr: a.Nr, Main: a.Main, SystemCurrentBytes: a.SystemCurrentBytes, SystemMaxBytes: a.SystemMaxBytes,
				FreeFastBytes: a.FreeFastBytes, FreeRestBytes: a.FreeRestBytes, UnsortedBytes: a.UnsortedBytes,
				TopBytes: a.TopBytes, RetainedFreeBytes: a.RetainedFreeBytes, InUseBytes: a.InUseBytes, Subheaps: a.Subheaps,
			}
			for _, b := range a.Bins {
				aj.Bins = append(aj.Bins, binJSON{FromBytes: b.From, ToBytes: b.To, TotalBytes: b.Total, Count: b.Count})
			}
			sj.Arenas = append(sj.Arenas, aj)
		}
		t := s.Totals
		sj.Totals = totalsJSON{t.Arenas, t.SystemCurrentBytes, t.FreeBytes, t.FreeFastBytes, t.TopBytes, t.RetainedFreeBytes, t.InUseBytes, t.MmapBytes, t.MmapCount}
		d.Snapshots = append(d.Snapshots, sj)
	}
	if v.Series != nil {
		sj := &seriesJSON{}
		for _, st := range v.Series.Steps {
			j := stepJSON{Index: st.Index, Line: st.Line, Label: st.Label, Arenas: st.Arenas, SystemCurrentBytes: st.SystemCurrentBytes,
				DeltaBytes: st.DeltaBytes, RetainedFreeBytes: st.RetainedFreeBytes, InUseBytes: st.InUseBytes,
				NewArenas: append([]int{}, st.NewArenas...), GrewMostBytes: st.GrewMostBytes}
			if st.GrewMost >= 0 {
				g := st.GrewMost
				j.GrewMost = &g
			}
			sj.Steps = append(sj.Steps, j)
		}
		for _, h := range v.Series.Arenas() {
			sj.Arenas = append(sj.Arenas, arenaHistoryJSON{h.Nr, h.FirstStep, h.FirstBytes, h.MaxBytes, h.LastBytes, h.LastRetained, h.LastFreeShare, h.PresentAtTheEnd})
		}
		d.Series = sj
	}
	return d
}
