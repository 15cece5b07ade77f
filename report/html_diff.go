package report

import (
	"fmt"
	"io"

	"github.com/memdiag/memdiag/explain"
)

// writeDiffHTML renders the diff page: the rules that tripped first, the
// two attributions side by side on one scale, then every change with a bar
// for its size.
func writeDiffHTML(w io.Writer, v *DiffView) error {
	t, shown := diffTable(v)
	p := &htmlPage{Title: t.Title, Alerts: diffAlerts(v)}
	p.Meta = []htmlMeta{
		{"before", fmt.Sprintf("%s, %s", who(v.Old), v.Old.Taken.Format("2006-01-02 15:04:05Z"))},
		{"after", fmt.Sprintf("%s, %s", who(v.New), v.New.Taken.Format("2006-01-02 15:04:05Z"))},
	}
	compare, legend := diffCompare(v)
	p.Blocks = append(p.Blocks, &htmlBlock{ID: "compare", Heading: "Before and after", Compare: compare, Legend: legend,
		Caption: "each snapshot's attribution, on one scale: the larger RSS spans the width; figures as each snapshot recorded them"})
	h := newHTMLTable(t)
	h.Title = ""
	h.Notes = nil // the alerts above say them
	addDeltaBars(h, shown)
	p.Blocks = append(p.Blocks, &htmlBlock{ID: "changes", Heading: "Changes", Table: h,
		Caption: "source: the two snapshots; PER MIN is the change over the time between them"})
	return writeHTMLPage(w, p)
}

// diffAlerts are the tripped and unevaluated rules, and the warnings about
// the comparison itself.
func diffAlerts(v *DiffView) []htmlAlert {
	var a []htmlAlert
	for _, tr := range v.Tripped {
		a = append(a, htmlAlert{"bad", "TRIPPED " + tr})
	}
	for _, u := range v.Unevaluated {
		a = append(a, htmlAlert{"bad", "NOT EVALUATED " + u})
	}
	for _, w := range v.warnings() {
		a = append(a, htmlAlert{"warn", w})
	}
	if h := v.heapOutlook(); h != "" {
		a = append(a, htmlAlert{"warn", h})
	}
	if len(v.Tripped) == 0 && len(v.Unevaluated) == 0 {
		a = append(a, htmlAlert{"good", "no --fail-on rule tripped"})
	}
	for i := range a {
		a[i].Text = Sanitize(a[i].Text)
	}
	return a
}

// diffCompare draws both snapshots' categories as bars on the scale of the
// larger RSS, with a legend of both figures.
func diffCompare(v *DiffView) ([]stackBar, []legendItem) {
	o, n := v.Old, v.New
	scale := max(o.RSSBytes, n.RSSBytes, 1)
	bars := []stackBar{
		newStackBar("before: RSS "+Bytes(o.RSSBytes), entryParts(o.Entries), scale, o.RSSBytes),
		newStackBar("after: RSS "+Bytes(n.RSSBytes), entryParts(n.Entries), scale, n.RSSBytes),
	}
	var legend []legendItem
	for _, c := range categoriesOf(o.Entries, n.Entries) {
		ob, nb := entryBytes(o.Entries, c), entryBytes(n.Entries, c)
		if ob == 0 && nb == 0 {
			continue
		}
		legend = append(legend, legendItem{classOf(c), string(c), Bytes(ob) + " → " + Bytes(nb)})
	}
	return bars, legend
}

func entryBytes(es []explain.Entry, c explain.Category) uint64 {
	for _, e := range es {
		if e.Category == c {
			return e.Bytes
		}
	}
	return 0
}

func entryParts(es []explain.Entry) []part {
	ps := make([]part, 0, len(es))
	for _, e := range es {
		ps = append(ps, part{string(e.Category), e.Bytes, classOf(e.Category)})
	}
	return ps
}

// categoriesOf lists the categories of a then those only b has, in order.
func categoriesOf(a, b []explain.Entry) []explain.Category {
	seen := map[explain.Category]bool{}
	var cs []explain.Category
	for _, es := range [][]explain.Entry{a, b} {
		for _, e := range es {
			if !seen[e.Category] {
				seen[e.Category] = true
				cs = append(cs, e.Category)
			}
		}
	}
	return cs
}

// addDeltaBars draws each comparable change as a bar from the middle,
// right for growth and left for shrinkage, on the scale of the largest.
func addDeltaBars(h *htmlTable, shown []explain.Change) {
	var top int64 = 1
	grows, shrinks := false, false
	for _, c := range shown {
		if c.Comparable() {
			top = max(top, abs64(c.Delta()))
			grows = grows || c.Delta() > 0
			shrinks = shrinks || c.Delta() < 0
		}
	}
	// From the middle when some grew and some shrank; otherwise growth
	// starts at the left and shrinkage at the right, over the whole width.
	half, origin := svgWidth/2, svgWidth/2
	switch {
	case !shrinks:
		half, origin = svgWidth, 0
	case !grows:
		half, origin = svgWidth, svgWidth
	}
	for i, c := range shown {
		if !c.Comparable() || c.Delta() == 0 {
			continue
		}
		w := float64(abs64(c.Delta())) / float64(top) * half
		w = max(w, 0.8)
		b := &rowBar{X: origin, W: w, Class: "grow", Mid: grows && shrinks}
		if c.Delta() < 0 {
			b.X, b.Class = origin-w, "shrink"
		}
		h.Rows[i].Bar = b
	}
	h.BarAt, h.Narrow = 4, false
}

func abs64(d int64) int64 {
	if d < 0 {
		return -d
	}
	return d
}
