package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/explain"
)

// writeExplainHTML renders the explain page: RSS as one bar of
// categories, the waterfall with each figure's source and confidence, the
// notes, the findings and the mapping classes behind them.
func writeExplainHTML(w io.Writer, v *ExplainView) error {
	p := &htmlPage{Title: explainTitle(v), Meta: explainMeta(v.Inputs)}
	rss := v.Result.RSSBytes
	var parts []part
	var legend []legendItem
	for _, e := range v.Result.Attribution {
		parts = append(parts, part{string(e.Category), e.Bytes, classOf(e.Category)})
		if e.Bytes > 0 {
			legend = append(legend, legendItem{classOf(e.Category), string(e.Category), Bytes(e.Bytes) + " · " + Percent(e.Bytes, rss)})
		}
	}
	bar := newStackBar("RSS "+Bytes(rss), parts, rss, rss)
	p.Blocks = append(p.Blocks,
		&htmlBlock{ID: "rss", Heading: "Where the RSS went", Stack: &bar, Legend: legend,
			Caption: "RSS is Σ Rss of /proc/PID/smaps; each category's source is in the table below. The categories sum to RSS exactly."},
		&htmlBlock{ID: "waterfall", Heading: "Attribution", Table: explainWaterfall(v)})
	p.setFindings(v.Result.Findings)
	if t := classesTable(v.Inputs); t != nil {
		p.After = append(p.After, &htmlBlock{ID: "classes", Heading: "Mapping classes", Table: t,
			Caption: "source: smaps, each mapping classified by its name, flags and shape (memdiag pmap shows them one by one)"})
	}
	return writeHTMLPage(w, p)
}

func explainMeta(in *explain.Inputs) []htmlMeta {
	var m []htmlMeta
	if in.PID != 0 {
		m = append(m, htmlMeta{"process", fmt.Sprintf("%d (%s)", in.PID, in.Command)})
	}
	m = append(m, htmlMeta{"smaps", in.Source})
	if in.Malloc != nil {
		m = append(m, htmlMeta{"allocator", in.Malloc.Source})
	}
	if in.JVM != nil && len(in.JVM.Sources) > 0 {
		m = append(m, htmlMeta{"JVM", strings.Join(in.JVM.Sources, ", ")})
	}
	if in.Trace != nil {
		m = append(m, htmlMeta{"trace", in.Trace.Source})
	}
	if c := in.Cgroup; c != nil {
		m = append(m, htmlMeta{"cgroup", fmt.Sprintf("%s: %s of %s", c.Path, Bytes(c.UsageBytes), Bytes(c.LimitBytes))})
	}
	return m
}

// explainWaterfall is the text's table with a bar per row, each starting
// where the one before ended; the evidence of each figure folds under it.
func explainWaterfall(v *ExplainView) *htmlTable {
	t := explainTable(v)
	h := newHTMLTable(t)
	h.Title = ""
	rss := max(v.Result.RSSBytes, 1)
	var at uint64
	for i, e := range v.Result.Attribution {
		x, wd := span(at, e.Bytes, rss, svgWidth)
		at += e.Bytes
		h.Rows[i].Bar = &rowBar{X: x, W: wd, Class: classOf(e.Category)}
		h.Rows[i].Swatch = classOf(e.Category)
		ev := sanitizeAll(e.Evidence)
		h.Rows[i].Tip = ev
		if len(ev) > 0 {
			h.Evidence = append(h.Evidence, evidenceGroup{Name: string(e.Category), Lines: ev})
		}
	}
	h.Rows[len(h.Rows)-1].Bar = &rowBar{X: 0, W: svgWidth, Class: "total"}
	h.BarAt, h.Fixed, h.Narrow = 0, true, false
	return h
}

// classesTable lists smaps' mapping classes by resident bytes; nil
// without them.
func classesTable(in *explain.Inputs) *htmlTable {
	if len(in.Classes) == 0 {
		return nil
	}
	t := &Table{Columns: []Column{{Header: "CLASS"}, {Header: "MAPPINGS", Align: Right}, {Header: "SIZE", Align: Right},
		{Header: "RSS", Align: Right}, {Header: "PSS", Align: Right}, {Header: "SWAP", Align: Right}, {Header: "ANON HUGE", Align: Right}},
		HasTotal: true}
	classes := append([]explain.ClassSum(nil), in.Classes...)
	sort.SliceStable(classes, func(i, j int) bool { return classes[i].RSSBytes > classes[j].RSSBytes })
	var tot explain.ClassSum
	for _, c := range classes {
		t.AddRow(string(c.Class), strconv.Itoa(c.Mappings), Bytes(c.SizeBytes), Bytes(c.RSSBytes), Bytes(c.PSSBytes), Bytes(c.SwapBytes), Bytes(c.AnonHugeBytes))
		tot.Mappings += c.Mappings
		tot.SizeBytes += c.SizeBytes
		tot.RSSBytes += c.RSSBytes
		tot.PSSBytes += c.PSSBytes
		tot.SwapBytes += c.SwapBytes
		tot.AnonHugeBytes += c.AnonHugeBytes
	}
	t.AddRow("total", strconv.Itoa(tot.Mappings), Bytes(tot.SizeBytes), Bytes(tot.RSSBytes), Bytes(tot.PSSBytes), Bytes(tot.SwapBytes), Bytes(tot.AnonHugeBytes))
	h := newHTMLTable(t)
	for i, c := range classes {
		x, w := span(0, c.RSSBytes, max(tot.RSSBytes, 1), svgWidth)
		h.Rows[i].Bar = &rowBar{X: x, W: w, Class: "k0"}
	}
	h.BarAt, h.Narrow = 3, false
	return h
}
