package mallocinfo

import (
	"fmt"
	"sort"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// Step is one snapshot of a series, compared with the one before.
type Step struct {
	Index              int // 0-based position in the series
	Line               int
	Label              string
	Arenas             int
	SystemCurrentBytes uint64
	RetainedFreeBytes  uint64
	InUseBytes         uint64
	// DeltaBytes is the change of Σ system current since the previous step.
	DeltaBytes int64
	// NewArenas are the arenas first seen in this step.
	NewArenas []int
	// GrewMost is the arena whose current size grew most in this step, -1
	// when none grew; GrewMostBytes is by how much.
	GrewMost      int
	GrewMostBytes int64
}

// ArenaHistory is one arena over the series.
type ArenaHistory struct {
	Nr              int
	FirstStep       int
	FirstBytes      uint64 // system current when first seen
	LastBytes       uint64 // system current in the last step that listed it
	MaxBytes        uint64
	LastRetained    uint64
	LastFreeShare   float64
	PresentAtTheEnd bool
	lastStep        int // the last step that listed it
}

// Series follows arenas across many snapshots (an application that logs
// malloc_info at intervals). Add snapshots in order; memory grows with the
// number of steps and arenas, not with the documents.
type Series struct {
	Steps   []Step
	history map[int]*ArenaHistory
	prev    map[int]uint64 // arena → current of the previous step
	cur     map[int]uint64 // this step's, reused
}

// NewSeries returns an empty series.
func NewSeries() *Series {
	return &Series{history: map[int]*ArenaHistory{}, prev: map[int]uint64{}, cur: map[int]uint64{}}
}

// Add appends a snapshot.
func (se *Series) Add(s *Snapshot) {
	idx := len(se.Steps)
	st := Step{
		Index: idx, Line: s.Line, Label: s.Label, Arenas: s.Totals.Arenas,
		SystemCurrentBytes: s.Totals.SystemCurrentBytes, RetainedFreeBytes: s.Totals.RetainedFreeBytes,
		InUseBytes: s.Totals.InUseBytes, GrewMost: -1,
	}
	if idx > 0 {
		st.DeltaBytes = int64(s.Totals.SystemCurrentBytes) - int64(se.Steps[idx-1].SystemCurrentBytes)
	}
	cur := se.cur
	clear(cur)
	for i := range s.Arenas {
		a := &s.Arenas[i]
		cur[a.Nr] = a.SystemCurrentBytes
		h, seen := se.history[a.Nr]
		if !seen {
			h = &ArenaHistory{Nr: a.Nr, FirstStep: idx, FirstBytes: a.SystemCurrentBytes}
			se.history[a.Nr] = h
			if idx > 0 {
				st.NewArenas = append(st.NewArenas, a.Nr)
			}
		}
		h.LastBytes = a.SystemCurrentBytes
		h.MaxBytes = max(h.MaxBytes, a.SystemCurrentBytes)
		h.LastRetained = a.RetainedFreeBytes
		h.LastFreeShare = a.FreeShare()
		h.lastStep = idx
		if idx > 0 {
			grew := int64(a.SystemCurrentBytes) - int64(se.prev[a.Nr])
			if grew > 0 && grew > st.GrewMostBytes {
				st.GrewMost, st.GrewMostBytes = a.Nr, grew
			}
		}
	}
	se.prev, se.cur = cur, se.prev
	se.Steps = append(se.Steps, st)
}

// Arenas returns every arena's history, by arena number.
func (se *Series) Arenas() []ArenaHistory {
	out := make([]ArenaHistory, 0, len(se.history))
	for _, h := range se.history {
		a := *h
		a.PresentAtTheEnd = a.lastStep == len(se.Steps)-1
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Nr < out[j].Nr })
	return out
}

// Findings draws conclusions from the series: the story-1 pattern, where
// steps add arenas that grow, then stay with their memory free.
func (se *Series) Findings(t Thresholds, source string) []finding.Finding {
	if len(se.Steps) < 2 {
		return nil
	}
	first, last := se.Steps[0], se.Steps[len(se.Steps)-1]
	growth := int64(last.SystemCurrentBytes) - int64(first.SystemCurrentBytes)
	var stranded []ArenaHistory
	var strandedBytes uint64
	for _, h := range se.Arenas() {
		if h.FirstStep > 0 && h.PresentAtTheEnd && h.LastFreeShare >= t.MostlyFreeShare && h.LastRetained > 0 {
			stranded = append(stranded, h)
			strandedBytes += h.LastRetained
		}
	}
	if growth <= 0 || len(stranded) == 0 || strandedBytes < t.RetainedMinBytes {
		return nil
	}
	var names []string
	var ev []string
	for _, h := range stranded {
		names = append(names, fmt.Sprint(h.Nr))
		ev = append(ev, fmt.Sprintf("arena %d: first seen in snapshot %d (line %d) at %d B, peaked at %d B, now %d B of which %d B retained free (%.1f %%)",
			h.Nr, h.FirstStep+1, se.Steps[h.FirstStep].Line, h.FirstBytes, h.MaxBytes, h.LastBytes, h.LastRetained, 100*h.LastFreeShare))
	}
	ev = append([]string{fmt.Sprintf("%s: %d snapshots; Σ system current %d B → %d B", source, len(se.Steps), first.SystemCurrentBytes, last.SystemCurrentBytes)}, ev...)
	return []finding.Finding{{
		ID:       "arena-steps",
		Severity: finding.High,
		Summary: fmt.Sprintf("malloc'd memory grew by %s over %d snapshots; %s %s appeared along the way and %s now ≥%.0f %% free, stranding %s",
			humanize.Bytes(uint64(growth)), len(se.Steps), humanize.Plural(len(stranded), "arena", "arenas"), humanize.List(names, "and"), humanize.Plural(len(stranded), "is", "are"), 100*t.MostlyFreeShare, humanize.Bytes(strandedBytes)),
		Bytes:    strandedBytes,
		Evidence: ev,
		Advice: append([]string{
			"Each new thread pool brings new threads and so new arenas; memory freed later by other threads returns to the old arena and stays there. Share one long-lived pool across tasks.",
		}, retentionAdvice...),
	}}
}
