package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/mallocinfo"
)

// arenaTrack keeps, for the HTML page of a log, each arena's bytes at
// every document: the series itself keeps only each arena's history.
type arenaTrack struct {
	steps   int
	byArena map[int][]uint64 // arena → system current per step, 0 where absent
}

func (t *arenaTrack) add(s *mallocinfo.Snapshot) {
	if t.byArena == nil {
		t.byArena = map[int][]uint64{}
	}
	for _, a := range s.Arenas {
		vs := t.byArena[a.Nr]
		if len(vs) < t.steps {
			vs = append(vs, make([]uint64, t.steps-len(vs))...)
		}
		t.byArena[a.Nr] = append(vs, a.SystemCurrentBytes)
	}
	t.steps++
}

// values is arena nr's bytes at every step.
func (t *arenaTrack) values(nr int) []uint64 {
	vs := t.byArena[nr]
	return append(vs, make([]uint64, t.steps-len(vs))...)
}

// mallocInfoSeriesArenas is how many arenas the time series draws on
// their own; the others are summed as one layer.
const mallocInfoSeriesArenas = 8

// writeMallocInfoHTML renders the mallocinfo page: the last document's
// arenas as bars of in use, retained free and top chunk; over a log, Σ
// current per arena across the documents with the telling ones marked.
func writeMallocInfoHTML(w io.Writer, v *MallocInfoView, track *arenaTrack) error {
	tables := mallocInfoTables(v, Style{})
	p := &htmlPage{Title: tables[0].Title, Meta: []htmlMeta{{"source", v.Source}}}
	if v.Snapshots > 1 {
		p.Meta = append(p.Meta, htmlMeta{"documents", strconv.Itoa(v.Snapshots)})
	}
	if v.Series != nil && track != nil && track.steps == len(v.Series.Steps) {
		d := mallocInfoSeries(v, track)
		p.Blocks = append(p.Blocks, &htmlBlock{ID: "series", Heading: "Arenas over time", Series: newSeriesChart(d), Legend: seriesLegend(d),
			Caption: fmt.Sprintf("source: %s, %d malloc_info documents; each arena's <system type=\"current\">, stacked; the dashed line is Σ retained free (free − top); marked: the documents the table below lists", v.Source, v.Snapshots)})
	}
	arenas := newHTMLTable(tables[0])
	arenas.Title = ""
	p.Blocks = append(p.Blocks, &htmlBlock{ID: "arenas", Heading: lastDocHeading(v), Bars: arenaBars(v), Legend: arenaLegend(),
		Table: arenas, Caption: "source: " + v.Source + "; retained free is free − top: what automatic trimming cannot return (malloc_trim can)"})
	if len(tables) > 1 {
		h := newHTMLTable(tables[1])
		heading := tableHeading(h.Title)
		h.Title = ""
		p.Blocks = append(p.Blocks, &htmlBlock{ID: "steps", Heading: heading, Table: h})
	}
	p.setFindings(v.Findings)
	return writeHTMLPage(w, p)
}

func lastDocHeading(v *MallocInfoView) string {
	if v.Snapshots > 1 {
		return fmt.Sprintf("Arenas at the last document (line %d)", v.Last.Line)
	}
	return "Arenas"
}

func arenaLegend() []legendItem {
	return []legendItem{{"k3", "in use", "allocated by the program"}, {"k4", "retained free", "free − top: stranded in the free lists"},
		{"k7", "top chunk", "free at the end of a heap: trimmable"}}
}

// arenaBars draws the arenas of the arenas table, in its order.
func arenaBars(v *MallocInfoView) *barList {
	shown := v.Last.ByRetained()
	if v.ArenaLimit > 0 && len(shown) > v.ArenaLimit {
		shown = shown[:v.ArenaLimit]
	}
	var labels, values []string
	var parts [][]part
	for _, a := range shown {
		name := "arena " + strconv.Itoa(a.Nr)
		if a.Main {
			name += " (main)"
		}
		labels = append(labels, name)
		values = append(values, Bytes(a.SystemCurrentBytes))
		free := a.FreeBytes()
		top := min(a.TopBytes, free)
		parts = append(parts, []part{{"in use", a.InUseBytes, "k3"}, {"retained free", free - top, "k4"}, {"top chunk", top, "k7"}})
	}
	return newBarList(labels, values, parts)
}

// mallocInfoSeries is Σ current per arena over the documents: the arenas
// that held most on their own, the rest as one layer.
func mallocInfoSeries(v *MallocInfoView, track *arenaTrack) *seriesData {
	steps := v.Series.Steps
	d := &seriesData{XLabel: func(x float64) string { return "#" + strconv.Itoa(int(x)) }, Integer: true}
	d.StepName = func(i int) string {
		st := &steps[i]
		name := fmt.Sprintf("#%d (line %d)", i+1, st.Line)
		if st.Label != "" {
			name += " " + clip(Sanitize(st.Label), 60)
		}
		return name
	}
	for i := range steps {
		d.X = append(d.X, float64(i+1))
	}
	d.Layers = arenaLayers(track)
	retained := make([]uint64, len(steps))
	for i := range steps {
		retained[i] = steps[i].RetainedFreeBytes
	}
	d.Lines = []seriesLayer{{Name: "Σ retained free", Class: "line", Values: retained}}
	why, _, _ := tellingSteps(steps)
	for i := range steps {
		if r, ok := why[i]; ok {
			d.Marks = append(d.Marks, seriesMark{Step: i, Label: "#" + strconv.Itoa(i+1), Tip: fmt.Sprintf("#%d: %s", i+1, strings.Join(r, ", "))})
		}
	}
	return d
}

// arenaLayers are the mallocInfoSeriesArenas arenas that held most at
// their peak, in arena order, then the others summed as one layer.
func arenaLayers(track *arenaTrack) []seriesLayer {
	nrs := make([]int, 0, len(track.byArena))
	peak := map[int]uint64{}
	for nr, vs := range track.byArena {
		nrs = append(nrs, nr)
		for _, b := range vs {
			peak[nr] = max(peak[nr], b)
		}
	}
	sort.Slice(nrs, func(i, j int) bool {
		if peak[nrs[i]] != peak[nrs[j]] {
			return peak[nrs[i]] > peak[nrs[j]]
		}
		return nrs[i] < nrs[j]
	})
	// The largest get the most distinct colours; the stack is in arena order.
	class := map[int]string{}
	for rank, nr := range nrs[:min(len(nrs), mallocInfoSeriesArenas)] {
		class[nr] = ordinalClass(rank)
	}
	own := append([]int(nil), nrs[:len(class)]...)
	sort.Ints(own)
	var layers []seriesLayer
	for _, nr := range own {
		name := "arena " + strconv.Itoa(nr)
		if nr == 0 {
			name += " (main)"
		}
		layers = append(layers, seriesLayer{Name: name, Class: class[nr], Values: track.values(nr)})
	}
	if rest := nrs[len(own):]; len(rest) > 0 {
		sum := make([]uint64, track.steps)
		for _, nr := range rest {
			for i, b := range track.values(nr) {
				sum[i] += b
			}
		}
		layers = append(layers, seriesLayer{Name: fmt.Sprintf("%d other arenas", len(rest)), Class: otherClass, Values: sum})
	}
	return layers
}
