package report

import (
	"fmt"
	"io"
	"time"

	"github.com/memdiag/memdiag/explain"
)

// WatchView is what `memdiag watch` saw, for its HTML page: every sample
// and the summary it ended with.
type WatchView struct {
	PID     int
	Command string
	Samples []WatchSample
	Summary string
}

// WatchSample is one sample of a watch.
type WatchSample struct {
	// Time is shown in its own location: the caller's choice.
	Time           time.Time
	ElapsedSeconds float64
	RSSBytes       uint64
	Categories     []WatchCategory
	// Lead is the sample's first finding in words, "" for none.
	Lead string
}

// WatchCategory is one category's figures in a sample.
type WatchCategory struct {
	Category        string
	Bytes           uint64
	DeltaBytes      int64
	RateBytesPerMin float64
}

// WriteWatchHTML renders the watch page: each category over the samples,
// stacked, with the largest rise and the peak marked, then every sample's
// figures as the text shows them.
func WriteWatchHTML(w io.Writer, v *WatchView) error {
	p := &htmlPage{Title: fmt.Sprintf("memdiag watch: process %d (%s)", v.PID, v.Command)}
	if len(v.Samples) > 0 {
		first, last := v.Samples[0], v.Samples[len(v.Samples)-1]
		p.Meta = []htmlMeta{{"samples", fmt.Sprintf("%d, %s to %s", len(v.Samples), first.Time.UTC().Format("2006-01-02 15:04:05Z"), last.Time.UTC().Format("15:04:05Z"))}}
	}
	if v.Summary != "" {
		p.Alerts = []htmlAlert{{"note", Sanitize(v.Summary)}}
	}
	if len(v.Samples) > 0 {
		d := watchSeries(v)
		p.Blocks = append(p.Blocks, &htmlBlock{ID: "series", Heading: "Categories over the samples", Series: newSeriesChart(d), Legend: seriesLegend(d),
			Caption: "source: each sample is one explain of the process (smaps and the evidence asked for); every sample is ticked on the time axis"})
		last := v.Samples[len(v.Samples)-1]
		p.Blocks = append(p.Blocks, &htmlBlock{ID: "last", Heading: fmt.Sprintf("The last sample, +%.0f s", last.ElapsedSeconds), Table: lastSampleTable(last)},
			&htmlBlock{ID: "samples", Heading: "Every sample", Table: watchTable(v), Fold: true})
	}
	return writeHTMLPage(w, p)
}

// watchSeries stacks the categories over the samples, in the
// attribution's order.
func watchSeries(v *WatchView) *seriesData {
	d := &seriesData{XLabel: func(x float64) string { return "+" + secondsLabel(x) }}
	index := map[string]int{}
	for i, s := range v.Samples {
		d.X = append(d.X, s.ElapsedSeconds)
		for _, c := range s.Categories {
			k, ok := index[c.Category]
			if !ok {
				k = len(d.Layers)
				index[c.Category] = k
				d.Layers = append(d.Layers, seriesLayer{Name: c.Category, Class: classOf(explain.Category(c.Category)), Values: make([]uint64, len(v.Samples))})
			}
			d.Layers[k].Values[i] = c.Bytes
		}
	}
	d.StepName = func(i int) string {
		s := v.Samples[i]
		return fmt.Sprintf("%s  +%.0f s  RSS %s", s.Time.Format("15:04:05"), s.ElapsedSeconds, Bytes(s.RSSBytes))
	}
	rise, peak := -1, 0
	for i := range v.Samples {
		if v.Samples[i].RSSBytes > v.Samples[peak].RSSBytes {
			peak = i
		}
		if i > 0 && v.Samples[i].RSSBytes > v.Samples[i-1].RSSBytes &&
			(rise < 0 || v.Samples[i].RSSBytes-v.Samples[i-1].RSSBytes > v.Samples[rise].RSSBytes-v.Samples[rise-1].RSSBytes) {
			rise = i
		}
	}
	if rise > 0 {
		d.Marks = append(d.Marks, seriesMark{Step: rise, Label: "largest rise", Tip: "largest rise of RSS between two samples"})
	}
	if peak > 0 && peak != rise {
		d.Marks = append(d.Marks, seriesMark{Step: peak, Label: "peak", Tip: "the largest RSS sampled: " + Bytes(v.Samples[peak].RSSBytes)})
	}
	return d
}

// lastSampleTable is the last sample as the text shows each: every
// category with its change since the first sample and its rate.
func lastSampleTable(s WatchSample) *htmlTable {
	t := &Table{Columns: []Column{{Header: "CATEGORY"}, {Header: "BYTES", Align: Right}, {Header: "CHANGE", Align: Right}, {Header: "PER MINUTE", Align: Right}}}
	var shown []string
	for _, c := range s.Categories {
		if c.Bytes == 0 && c.DeltaBytes == 0 {
			continue
		}
		shown = append(shown, c.Category)
		t.AddRow(c.Category, Bytes(c.Bytes), plusBytes(c.DeltaBytes), plusBytes(int64(c.RateBytesPerMin))+"/min")
	}
	if s.Lead != "" {
		t.Notes = append(t.Notes, "lead: "+s.Lead)
	}
	h := newHTMLTable(t)
	for i, c := range shown {
		h.Rows[i].Swatch = classOf(explain.Category(c))
	}
	return h
}

// watchTable lists every sample's categories with the figures the text
// prints for each sample.
func watchTable(v *WatchView) *htmlTable {
	t := &Table{Columns: []Column{{Header: "TIME"}, {Header: "+S", Align: Right}, {Header: "RSS", Align: Right}, {Header: "CATEGORY"},
		{Header: "BYTES", Align: Right}, {Header: "CHANGE", Align: Right}, {Header: "PER MINUTE", Align: Right}}}
	for _, s := range v.Samples {
		when, since := s.Time.Format("15:04:05"), fmt.Sprintf("+%.0f s", s.ElapsedSeconds)
		for _, c := range s.Categories {
			if c.Bytes == 0 && c.DeltaBytes == 0 {
				continue
			}
			t.AddRow(when, since, Bytes(s.RSSBytes), c.Category, Bytes(c.Bytes), plusBytes(c.DeltaBytes), plusBytes(int64(c.RateBytesPerMin))+"/min")
		}
		if s.Lead != "" {
			t.Notes = append(t.Notes, fmt.Sprintf("%s lead: %s", when, s.Lead))
		}
	}
	return newHTMLTable(t)
}

// plusBytes signs a change as watch's text does: "+0 B" for none.
func plusBytes(d int64) string {
	if d < 0 {
		return "-" + Bytes(uint64(-d))
	}
	return "+" + Bytes(uint64(d))
}

// NewWatchView is a watch's samples for its HTML page, times in the local
// zone as the text shows them.
func NewWatchView(pid int, command string, samples []*explain.WatchSample, summary string) *WatchView {
	v := &WatchView{PID: pid, Command: command, Summary: summary}
	for _, s := range samples {
		ws := WatchSample{Time: s.Time.Local(), ElapsedSeconds: s.Elapsed.Seconds(), RSSBytes: s.RSSBytes}
		for _, c := range s.Categories {
			ws.Categories = append(ws.Categories, WatchCategory{Category: string(c.Category), Bytes: c.Bytes, DeltaBytes: c.DeltaBytes, RateBytesPerMin: c.BytesPerMinute})
		}
		if s.Lead != nil {
			ws.Lead = fmt.Sprintf("[%s] %s: %s", s.Lead.Severity, s.Lead.ID, s.Lead.Summary)
		}
		v.Samples = append(v.Samples, ws)
	}
	return v
}
