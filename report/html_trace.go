package report

import (
	"fmt"
	"io"

	"github.com/memdiag/memdiag/syscalltrace"
)

// writeTraceHTML renders the trace page: the summary, the mapped bytes
// over the trace, the icicle graph of what is outstanding by stack, and
// the groups as the text lists them.
func writeTraceHTML(w io.Writer, v *TraceView) error {
	tables := traceTables(v, Style{})
	summary := newHTMLTable(tables[0])
	summary.Title = ""
	before := []*htmlBlock{{ID: "summary", Heading: "Summary", Table: summary}}
	if tl := v.Replay.Timeline(); len(tl) > 1 {
		d := timelineSeries(tl)
		before = append(before, &htmlBlock{ID: "timeline", Heading: "Mapped over the trace", Series: newSeriesChart(d),
			Caption: "source: " + v.Source + "; bytes mapped by the traced calls after each event (all address spaces)"})
	}
	fp := &FlamePage{Title: tables[0].Title, Source: fmt.Sprintf("%s (%s)", v.Source, v.Format),
		What:   "outstanding bytes: mapped during the trace and never unmapped, by the stack that mapped them",
		Stacks: traceStacks(v.Outstanding), Tables: tables[1:], Findings: v.Findings}
	return writeHTMLPage(w, flamePage(fp, before))
}

// traceStacks are the outstanding mappings as stacks, outermost caller
// first; a mapping with no stack is filed under what it maps.
func traceStacks(ms []*syscalltrace.Mapping) []Stack {
	stacks := make([]Stack, 0, len(ms))
	for _, m := range ms {
		s := Stack{Bytes: m.Len(), Count: 1}
		for i := len(m.Frames) - 1; i >= 0; i-- {
			s.Frames = append(s.Frames, m.Frames[i].String())
		}
		if len(s.Frames) == 0 {
			name := m.Path
			switch {
			case m.Anonymous:
				name = "anonymous"
			case name == "":
				name = fmt.Sprintf("fd %d", m.FD)
			}
			s.Frames = []string{"(no stack)", name}
		}
		stacks = append(stacks, s)
	}
	return stacks
}

// timelineSeries is the replay's mapped bytes, over time when the trace
// has times, else over its events.
func timelineSeries(tl []syscalltrace.Point) *seriesData {
	d := &seriesData{XLabel: func(x float64) string { return fmt.Sprintf("event %.0f", x) }}
	timed := tl[len(tl)-1].Time > tl[0].Time
	t0 := tl[0].Time
	vals := make([]uint64, len(tl))
	for i, p := range tl {
		if timed {
			d.X = append(d.X, p.Time-t0)
		} else {
			d.X = append(d.X, float64(p.Event))
		}
		vals[i] = p.Bytes
	}
	if timed {
		d.XLabel = func(x float64) string { return "+" + secondsLabel(x) }
	}
	d.StepName = func(i int) string {
		if timed {
			return fmt.Sprintf("event %d, +%s", tl[i].Event, secondsLabel(tl[i].Time-t0))
		}
		return fmt.Sprintf("event %d", tl[i].Event)
	}
	d.Layers = []seriesLayer{{Name: "mapped", Class: "k0", Values: vals}}
	return d
}
