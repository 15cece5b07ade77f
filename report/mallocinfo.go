package report

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/mallocinfo"
)

// MallocInfoSchema versions the JSON of `memdiag mallocinfo`.
const MallocInfoSchema = "memdiag.mallocinfo/v1"

// MallocInfoView is everything `memdiag mallocinfo` shows once every
// document is read.
type MallocInfoView struct {
	Source string
	PID    int // 0 when read from a file
	// Last is the last snapshot read, with its size-class bins.
	Last *mallocinfo.Snapshot
	// Snapshots counts the documents read.
	Snapshots int
	Series    *mallocinfo.Series // nil with fewer than two snapshots
	Findings  []finding.Finding
	// ArenaLimit caps the arena table (0: all).
	ArenaLimit int
	// AllSteps lists every step of a series; otherwise a long series is
	// summarised by its telling steps.
	AllSteps bool
}

// seriesSummaryAbove is the number of steps a series table lists whole;
// a longer one is summarised.
const seriesSummaryAbove = 20

// MallocInfoWriter renders `memdiag mallocinfo` while its documents are
// read, so that memory holds one document however long the log: JSON
// writes each snapshot as it comes (held back by one, so that only the
// last keeps its size-class bins); tables wait for Finish.
type MallocInfoWriter struct {
	w      io.Writer
	f      Format
	style  Style
	source string
	pid    int

	bw      *bufio.Writer
	held    *mallocinfo.Snapshot // JSON: read, not yet written
	written int
	buf     []byte
	track   arenaTrack // HTML: each arena over the documents
}

// NewMallocInfoWriter renders to w in format f; source and pid head the
// JSON document.
func NewMallocInfoWriter(w io.Writer, f Format, s Style, source string, pid int) *MallocInfoWriter {
	return &MallocInfoWriter{w: w, f: f, style: s, source: source, pid: pid}
}

// Add takes the next snapshot. Nothing is written before the first, so a
// file with no document writes nothing.
func (m *MallocInfoWriter) Add(s *mallocinfo.Snapshot) error {
	if m.f == FormatHTML {
		m.track.add(s)
	}
	if m.f != FormatJSON {
		return nil
	}
	if m.bw == nil {
		m.bw = bufio.NewWriterSize(m.w, 64<<10)
		b := append(m.buf[:0], "{\n  \"schema\": "...)
		b = appendString(b, MallocInfoSchema)
		b = append(b, ",\n  \"source\": "...)
		b = appendString(b, m.source)
		if m.pid != 0 {
			b = append(b, ",\n  \"pid\": "...)
			b = strconv.AppendInt(b, int64(m.pid), 10)
		}
		b = append(b, ",\n  \"snapshots\": ["...)
		m.buf = b
		if _, err := m.bw.Write(b); err != nil {
			return err
		}
	}
	err := m.flushHeld(false)
	m.held = s
	return err
}

// flushHeld writes the held snapshot, one line, with its bins if it is
// the last.
func (m *MallocInfoWriter) flushHeld(last bool) error {
	if m.held == nil {
		return nil
	}
	b := m.buf[:0]
	if m.written > 0 {
		b = append(b, ',')
	}
	b = append(b, "\n    "...)
	b = appendSnapshot(b, m.held, last)
	m.buf = b
	m.held = nil
	m.written++
	_, err := m.bw.Write(b)
	return err
}

// Finish renders what is left: the last snapshot, the series and the
// findings in JSON; everything in a table or markdown.
func (m *MallocInfoWriter) Finish(v *MallocInfoView) error {
	if m.f == FormatHTML {
		return writeMallocInfoHTML(m.w, v, &m.track)
	}
	if m.f != FormatJSON {
		if err := writeTables(m.w, m.f, mallocInfoTables(v, m.style), m.style); err != nil {
			return err
		}
		return writeFindings(m.w, m.f, v.Findings, m.style)
	}
	if m.bw == nil {
		return errors.New("no snapshot to write")
	}
	if err := m.flushHeld(true); err != nil {
		return err
	}
	bw := m.bw
	bw.WriteString("\n  ]")
	if v.Series != nil {
		bw.WriteString(",\n  \"series\": {\n    \"steps\": [")
		for i := range v.Series.Steps {
			b := m.buf[:0]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n      "...)
			b = appendStep(b, &v.Series.Steps[i])
			m.buf = b
			bw.Write(b)
		}
		bw.WriteString("\n    ],\n    \"arenas\": [")
		for i, h := range v.Series.Arenas() {
			if i > 0 {
				bw.WriteByte(',')
			}
			line, err := json.Marshal(arenaHistoryJSON{h.Nr, h.FirstStep, h.FirstBytes, h.MaxBytes, h.LastBytes, h.LastRetained, h.LastFreeShare, h.PresentAtTheEnd})
			if err != nil {
				return err
			}
			bw.WriteString("\n      ")
			bw.Write(EscapeJSON(line))
		}
		bw.WriteString("\n    ]\n  }")
	}
	findings, err := json.MarshalIndent(findingsJSON(v.Findings), "  ", "  ")
	if err != nil {
		return err
	}
	bw.WriteString(",\n  \"findings\": ")
	bw.Write(EscapeJSON(findings))
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// WriteMallocInfo renders a view whose snapshots were all read: last alone
// is written as the snapshot list.
func WriteMallocInfo(w io.Writer, f Format, v *MallocInfoView, s Style) error {
	m := NewMallocInfoWriter(w, f, s, v.Source, v.PID)
	if err := m.Add(v.Last); err != nil {
		return err
	}
	return m.Finish(v)
}

func mallocInfoTables(v *MallocInfoView, s Style) []*Table {
	last := v.Last
	title := "memdiag mallocinfo: " + v.Source
	if v.PID != 0 {
		title = fmt.Sprintf("memdiag mallocinfo: process %d", v.PID)
	}
	if v.Snapshots > 1 {
		title += fmt.Sprintf(" — last of %d snapshots (line %d)", v.Snapshots, last.Line)
	}
	arenas := &Table{
		Title: title,
		Columns: []Column{
			{Header: "ARENA"}, {Header: "CURRENT", Align: Right}, {Header: "IN USE", Align: Right},
			{Header: "FREE", Align: Right}, {Header: "FAST", Align: Right, Drop: 2}, {Header: "TOP", Align: Right, Drop: 1},
			{Header: "RETAINED", Align: Right}, {Header: "%FREE", Align: Right}, {Header: "HEAPS", Align: Right, Drop: 3},
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
	return append(tables, seriesTable(v, s))
}

// seriesTable lists the steps of a series: all of them when few or asked
// for, otherwise the ones that tell the story — the first, those that
// brought new arenas, the largest rise and fall, the peaks, the last.
func seriesTable(v *MallocInfoView, s Style) *Table {
	steps := v.Series.Steps
	t := &Table{
		Title: "over time",
		Columns: []Column{
			{Header: "#", Align: Right}, {Header: "LINE", Align: Right}, {Header: "ARENAS", Align: Right},
			{Header: "CURRENT", Align: Right}, {Header: "CHANGE", Align: Right}, {Header: "RETAINED", Align: Right},
			{Header: "NEW ARENAS"}, {Header: "GREW MOST"}, {Header: "LOGGED AFTER"},
		},
	}
	cells := func(st *mallocinfo.Step, why string) []string {
		grew := ""
		if st.GrewMost >= 0 {
			grew = fmt.Sprintf("arena %d +%s", st.GrewMost, Bytes(uint64(st.GrewMostBytes)))
		}
		cells := []string{strconv.Itoa(st.Index + 1), strconv.Itoa(st.Line), strconv.Itoa(st.Arenas), Bytes(st.SystemCurrentBytes),
			signedBytes(st.DeltaBytes), Bytes(st.RetainedFreeBytes), joinInts(st.NewArenas), grew, st.Label}
		if why != "-" {
			cells = append([]string{why}, cells...)
		}
		return cells
	}
	if v.AllSteps || len(steps) <= seriesSummaryAbove {
		t.RowCount = len(steps)
		t.Row = func(i int) []string { return cells(&steps[i], "-") }
		return t
	}
	why, peakCur, newArenaSteps := tellingSteps(steps)
	picked := make([]int, 0, len(why))
	for i := range why {
		picked = append(picked, i)
	}
	sort.Ints(picked)
	t.Title = fmt.Sprintf("over time: %d of %d snapshots, the ones that tell (--all lists every one)", len(picked), len(steps))
	t.Columns = append([]Column{{Header: "WHY"}}, t.Columns...)
	for _, i := range picked {
		t.AddRow(cells(&steps[i], strings.Join(why[i], ", "))...)
	}
	first, last := &steps[0], &steps[len(steps)-1]
	t.Notes = append(t.Notes, fmt.Sprintf("Σ current: %s at the first snapshot, peak %s at #%d, %s at the last; %d snapshots rose, %d fell",
		Bytes(first.SystemCurrentBytes), Bytes(steps[peakCur].SystemCurrentBytes), peakCur+1, Bytes(last.SystemCurrentBytes), countSteps(steps, 1), countSteps(steps, -1)))
	if len(newArenaSteps) > maxNewArenaRows {
		t.Notes = append(t.Notes, fmt.Sprintf("%d snapshots brought new arenas; the first %d are listed", len(newArenaSteps), maxNewArenaRows))
	}
	if s.Color {
		t.Notes = append(t.Notes, "Σ current over the snapshots: "+stepSparkline(steps))
	}
	return t
}

// maxNewArenaRows caps the steps marked for bringing new arenas.
const maxNewArenaRows = 8

// tellingSteps says why each step that tells the story of a series is one:
// the first, those that brought new arenas (the first maxNewArenaRows),
// the largest rise and fall, the peaks, the last. It returns the step of
// the Σ current peak and every step with new arenas too.
func tellingSteps(steps []mallocinfo.Step) (why map[int][]string, peakCur int, newArenaSteps []int) {
	why = map[int][]string{}
	mark := func(i int, reason string) { why[i] = append(why[i], reason) }
	mark(0, "first")
	peakRet, rise, fall := 0, -1, -1
	for i := range steps {
		st := &steps[i]
		if st.SystemCurrentBytes > steps[peakCur].SystemCurrentBytes {
			peakCur = i
		}
		if st.RetainedFreeBytes > steps[peakRet].RetainedFreeBytes {
			peakRet = i
		}
		if st.DeltaBytes > 0 && (rise < 0 || st.DeltaBytes > steps[rise].DeltaBytes) {
			rise = i
		}
		if st.DeltaBytes < 0 && (fall < 0 || st.DeltaBytes < steps[fall].DeltaBytes) {
			fall = i
		}
		if len(st.NewArenas) > 0 {
			newArenaSteps = append(newArenaSteps, i)
		}
	}
	for _, i := range newArenaSteps[:min(len(newArenaSteps), maxNewArenaRows)] {
		mark(i, "new arenas")
	}
	if rise >= 0 {
		mark(rise, "largest rise")
	}
	if fall >= 0 {
		mark(fall, "largest fall")
	}
	mark(peakCur, "peak")
	mark(peakRet, "most retained")
	mark(len(steps)-1, "last")
	return why, peakCur, newArenaSteps
}

func countSteps(steps []mallocinfo.Step, sign int) int {
	n := 0
	for i := range steps {
		if d := steps[i].DeltaBytes; (sign > 0 && d > 0) || (sign < 0 && d < 0) {
			n++
		}
	}
	return n
}

// stepSparkline draws Σ current over the steps, 60 columns wide, each the
// largest value of the steps it covers, so that no peak is lost.
func stepSparkline(steps []mallocinfo.Step) string {
	const width = 60
	bars := []rune("▁▂▃▄▅▆▇█")
	var peak uint64
	for i := range steps {
		peak = max(peak, steps[i].SystemCurrentBytes)
	}
	if peak == 0 {
		return ""
	}
	cols := min(width, len(steps))
	var b strings.Builder
	for c := 0; c < cols; c++ {
		var top uint64
		for i := c * len(steps) / cols; i < (c+1)*len(steps)/cols; i++ {
			top = max(top, steps[i].SystemCurrentBytes)
		}
		b.WriteRune(bars[int(float64(top)/float64(peak)*float64(len(bars)-1))])
	}
	return b.String()
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

// joinInts lists arena numbers, runs of three or more as "7–64".
func joinInts(ns []int) string {
	var parts []string
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		switch {
		case j-i >= 2:
			parts = append(parts, fmt.Sprintf("%d–%d", ns[i], ns[j]))
		case j > i:
			parts = append(parts, strconv.Itoa(ns[i]), strconv.Itoa(ns[j]))
		default:
			parts = append(parts, strconv.Itoa(ns[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
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

// The snapshots and steps are written by hand, one per line: a log may
// hold tens of thousands, which reflection would make slow.

func appendSnapshot(b []byte, s *mallocinfo.Snapshot, withBins bool) []byte {
	b = append(b, `{"line":`...)
	b = strconv.AppendInt(b, int64(s.Line), 10)
	b = append(b, `,"label":`...)
	b = appendString(b, s.Label)
	b = append(b, `,"arenas":[`...)
	for i := range s.Arenas {
		a := &s.Arenas[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"nr":`...)
		b = strconv.AppendInt(b, int64(a.Nr), 10)
		b = append(b, `,"main":`...)
		b = strconv.AppendBool(b, a.Main)
		b = appendUintKey(b, "system_current_bytes", a.SystemCurrentBytes)
		b = appendUintKey(b, "system_max_bytes", a.SystemMaxBytes)
		b = appendUintKey(b, "free_fast_bytes", a.FreeFastBytes)
		b = appendUintKey(b, "free_rest_bytes", a.FreeRestBytes)
		b = appendUintKey(b, "unsorted_bytes", a.UnsortedBytes)
		b = appendUintKey(b, "top_bytes", a.TopBytes)
		b = appendUintKey(b, "retained_free_bytes", a.RetainedFreeBytes)
		b = appendUintKey(b, "in_use_bytes", a.InUseBytes)
		b = appendUintKey(b, "subheaps", a.Subheaps)
		if withBins && len(a.Bins) > 0 {
			b = append(b, `,"bins":[`...)
			for j, bin := range a.Bins {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"from_bytes":`...)
				b = strconv.AppendUint(b, bin.From, 10)
				b = appendUintKey(b, "to_bytes", bin.To)
				b = appendUintKey(b, "total_bytes", bin.Total)
				b = appendUintKey(b, "count", bin.Count)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	t := &s.Totals
	b = append(b, `],"totals":{"arenas":`...)
	b = strconv.AppendInt(b, int64(t.Arenas), 10)
	b = appendUintKey(b, "system_current_bytes", t.SystemCurrentBytes)
	b = appendUintKey(b, "free_bytes", t.FreeBytes)
	b = appendUintKey(b, "free_fast_bytes", t.FreeFastBytes)
	b = appendUintKey(b, "top_bytes", t.TopBytes)
	b = appendUintKey(b, "retained_free_bytes", t.RetainedFreeBytes)
	b = appendUintKey(b, "in_use_bytes", t.InUseBytes)
	b = appendUintKey(b, "mmap_bytes", t.MmapBytes)
	b = appendUintKey(b, "mmap_count", t.MmapCount)
	b = append(b, `},"warnings":[`...)
	for i, w := range s.Warnings {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, w)
	}
	return append(b, "]}"...)
}

func appendStep(b []byte, st *mallocinfo.Step) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(st.Index), 10)
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(st.Line), 10)
	b = append(b, `,"label":`...)
	b = appendString(b, st.Label)
	b = append(b, `,"arenas":`...)
	b = strconv.AppendInt(b, int64(st.Arenas), 10)
	b = appendUintKey(b, "system_current_bytes", st.SystemCurrentBytes)
	b = append(b, `,"delta_bytes":`...)
	b = strconv.AppendInt(b, st.DeltaBytes, 10)
	b = appendUintKey(b, "retained_free_bytes", st.RetainedFreeBytes)
	b = appendUintKey(b, "in_use_bytes", st.InUseBytes)
	b = append(b, `,"new_arenas":[`...)
	for i, n := range st.NewArenas {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	b = append(b, ']')
	if st.GrewMost >= 0 {
		b = append(b, `,"grew_most":`...)
		b = strconv.AppendInt(b, int64(st.GrewMost), 10)
	}
	b = append(b, `,"grew_most_bytes":`...)
	b = strconv.AppendInt(b, st.GrewMostBytes, 10)
	return append(b, '}')
}

func appendUintKey(b []byte, key string, v uint64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendUint(b, v, 10)
}
