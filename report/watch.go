package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/memdiag/memdiag/explain"
)

// WatchSchema versions the JSON lines of `memdiag watch`.
const WatchSchema = "memdiag.watch/v1"

// WatchHeaderEvery is how many lines a terminal gets between two headers,
// as vmstat repeats its own every screenful.
const WatchHeaderEvery = 20

// WatchWriter writes `memdiag watch`'s samples as they come: by default
// one line each under a header, as vmstat does; with Tables, each sample
// as its own table; in JSON, one object per line.
type WatchWriter struct {
	w     io.Writer
	f     Format
	style Style
	// PID is the process watched, named in JSON.
	PID int
	// Tables writes a table per sample instead of a line.
	Tables bool
	// HeaderEvery repeats the header after so many lines (0: once, as
	// for a pipe, so that awk sees one).
	HeaderEvery int

	cats     []explain.Category // the categories of the last header
	shown    []explain.Category // those of them in the columns
	lines    int                // lines since the header
	markdown bool               // a markdown header was written
}

// NewWatchWriter writes samples to w in format f.
func NewWatchWriter(w io.Writer, f Format, s Style) *WatchWriter {
	return &WatchWriter{w: w, f: f, style: s}
}

// Write writes one sample.
func (ww *WatchWriter) Write(s *explain.WatchSample) error {
	switch {
	case ww.f == FormatJSON:
		b, err := json.Marshal(watchJSON(s, ww.PID))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(ww.w, "%s\n", EscapeJSON(b))
		return err
	case ww.Tables:
		return ww.writeTable(s)
	}
	return ww.writeLine(s)
}

type watchSampleJSON struct {
	Schema         string              `json:"schema"`
	PID            int                 `json:"pid"`
	Time           string              `json:"time"`
	ElapsedSeconds float64             `json:"elapsed_seconds"`
	RSSBytes       uint64              `json:"rss_bytes"`
	Categories     []watchCategoryJSON `json:"categories"`
	Lead           *watchLeadJSON      `json:"lead_finding,omitempty"`
}

type watchLeadJSON struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
}

type watchCategoryJSON struct {
	Category        string  `json:"category"`
	Bytes           uint64  `json:"bytes"`
	DeltaBytes      int64   `json:"delta_bytes"`
	RateBytesPerMin float64 `json:"rate_bytes_per_minute"`
}

func watchJSON(s *explain.WatchSample, pid int) *watchSampleJSON {
	j := &watchSampleJSON{Schema: WatchSchema, PID: pid, Time: s.Time.UTC().Format(time.RFC3339Nano),
		ElapsedSeconds: s.Elapsed.Seconds(), RSSBytes: s.RSSBytes, Categories: []watchCategoryJSON{}}
	for _, c := range s.Categories {
		j.Categories = append(j.Categories, watchCategoryJSON{string(c.Category), c.Bytes, c.DeltaBytes, c.BytesPerMinute})
	}
	if f := s.Lead; f != nil {
		j.Lead = &watchLeadJSON{f.ID, string(f.Severity), f.Summary}
	}
	return j
}

func (ww *WatchWriter) writeTable(s *explain.WatchSample) error {
	t := &Table{
		Title:   fmt.Sprintf("%s  +%.0f s  RSS %s", s.Time.Local().Format("15:04:05"), s.Elapsed.Seconds(), Bytes(s.RSSBytes)),
		Columns: []Column{{Header: "CATEGORY"}, {Header: "BYTES", Align: Right}, {Header: "CHANGE", Align: Right}, {Header: "PER MINUTE", Align: Right}},
	}
	for _, c := range s.Categories {
		if c.Bytes == 0 && c.DeltaBytes == 0 {
			continue
		}
		t.AddRow(string(c.Category), Bytes(c.Bytes), signedBytes(c.DeltaBytes), signedBytes(int64(c.BytesPerMinute))+"/min")
	}
	if f := s.Lead; f != nil {
		t.Notes = append(t.Notes, fmt.Sprintf("lead: [%s] %s: %s", f.Severity, f.ID, f.Summary))
	}
	if ww.f == FormatMarkdown {
		return t.WriteMarkdown(ww.w)
	}
	if err := t.WriteText(ww.w, ww.style); err != nil {
		return err
	}
	_, err := fmt.Fprintln(ww.w)
	return err
}

// The line's fixed columns, and the width of a category's (a size as
// Bytes writes it: "1023.9 MiB").
const (
	watchGrowingWidth = 30
	watchSizeWidth    = 10
)

// writeLine writes s as a line, under a header when it is the first, when
// the categories measured changed, or every HeaderEvery lines.
func (ww *WatchWriter) writeLine(s *explain.WatchSample) error {
	cats := make([]explain.Category, len(s.Categories))
	for i, c := range s.Categories {
		cats[i] = c.Category
	}
	var b strings.Builder
	if !slices.Equal(cats, ww.cats) || (ww.HeaderEvery > 0 && ww.lines >= ww.HeaderEvery) {
		ww.cats, ww.shown, ww.lines = cats, ww.fitCategories(s), 0
		ww.header(&b)
	}
	ww.lines++
	cells := []string{s.Time.Local().Format("15:04:05"), s.Elapsed.Round(time.Second).String(), Bytes(s.RSSBytes), signedBytes(int64(s.RSSBytesPerMinute))}
	for _, c := range ww.shown {
		cells = append(cells, Bytes(bytesOf(s, c)))
	}
	growing := "-"
	if g := s.GrewMost(); g != nil {
		growing = fmt.Sprintf("%s %s/min", g.Category, signedBytes(int64(g.BytesPerMinute)))
	}
	lead := "-"
	if s.Lead != nil {
		lead = s.Lead.ID
	}
	ww.row(&b, append(cells, growing, Sanitize(lead)))
	_, err := io.WriteString(ww.w, b.String())
	return err
}

func bytesOf(s *explain.WatchSample, c explain.Category) uint64 {
	for _, e := range s.Categories {
		if e.Category == c {
			return e.Bytes
		}
	}
	return 0
}

// watchColumns are the line's columns: time, elapsed, RSS, its rate, the
// categories, the one growing fastest, the lead finding.
func (ww *WatchWriter) watchColumns() []Column {
	cols := []Column{{Header: "TIME"}, {Header: "ELAPSED", Align: Right}, {Header: "RSS", Align: Right}, {Header: "RSS/MIN", Align: Right}}
	for _, c := range ww.shown {
		cols = append(cols, Column{Header: string(c), Align: Right})
	}
	return append(cols, Column{Header: "GROWING FASTEST"}, Column{Header: "LEAD"})
}

// widths are the columns' fixed widths: a stream cannot measure its rows.
func (ww *WatchWriter) widths() []int {
	w := []int{8, 7, watchSizeWidth, watchSizeWidth}
	for _, c := range ww.shown {
		w = append(w, max(len(c), watchSizeWidth))
	}
	return append(w, watchGrowingWidth, 0)
}

// fitCategories keeps, when the line would be wider than the style's
// width, the largest categories of s: the others are in the total (RSS)
// and, growing, in GROWING FASTEST.
func (ww *WatchWriter) fitCategories(s *explain.WatchSample) []explain.Category {
	order := slices.Clone(s.Categories)
	slices.SortStableFunc(order, func(a, b explain.CategoryChange) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return 0
	})
	// time, elapsed, RSS, rate, growing, and room for a lead's id.
	fixed := 8 + 7 + watchSizeWidth + watchSizeWidth + watchGrowingWidth + 16 + 5*2
	keep := map[explain.Category]bool{}
	used := fixed
	for _, c := range order {
		w := max(len(c.Category), watchSizeWidth) + 2
		if ww.style.Width > 0 && used+w > ww.style.Width {
			break
		}
		keep[c.Category], used = true, used+w
	}
	var shown []explain.Category
	for _, c := range s.Categories {
		if keep[c.Category] {
			shown = append(shown, c.Category)
		}
	}
	return shown
}

func (ww *WatchWriter) header(b *strings.Builder) {
	cols := ww.watchColumns()
	h := make([]string, len(cols))
	for i, c := range cols {
		h[i] = c.Header
	}
	if ww.f == FormatMarkdown {
		if ww.markdown {
			return // one table: a header again would be a row
		}
		ww.markdown = true
		b.WriteString("| " + strings.Join(h, " | ") + " |\n|")
		for _, c := range cols {
			if c.Align == Right {
				b.WriteString(" ---: |")
			} else {
				b.WriteString(" --- |")
			}
		}
		b.WriteString("\n")
		return
	}
	if left := len(ww.cats) - len(ww.shown); left > 0 {
		fmt.Fprintf(b, "(%d of %d categories left out to fit %d columns, the smallest: --wide shows them)\n", left, len(ww.cats), ww.style.Width)
	}
	ww.row(b, h)
}

func (ww *WatchWriter) row(b *strings.Builder, cells []string) {
	if ww.f == FormatMarkdown {
		for i := range cells {
			cells[i] = markdownCell(cells[i])
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		return
	}
	cols, widths := ww.watchColumns(), ww.widths()
	for i, c := range cells {
		pad := strings.Repeat(" ", max(0, widths[i]-displayWidth(c)))
		switch {
		case i == len(cells)-1:
			b.WriteString(c)
		case cols[i].Align == Right:
			b.WriteString(pad + c + "  ")
		default:
			b.WriteString(c + pad + "  ")
		}
	}
	b.WriteString("\n")
}

// WatchSummary is the line a watch ends with: why it ended, after how
// long, RSS then and now, the category that grew most and its rate, and
// for a JVM the heap's outlook.
func WatchSummary(w *explain.Watch, why string) string {
	last := w.Last()
	s := fmt.Sprintf("%s after %.0f s; RSS %s → %s", why, last.Elapsed.Seconds(), Bytes(w.FirstRSSBytes()), Bytes(last.RSSBytes))
	if g := last.GrewMost(); g != nil {
		s += fmt.Sprintf("; %s grew most: %s (%s/min)", g.Category, signedBytes(g.DeltaBytes), signedBytes(int64(g.BytesPerMinute)))
	}
	if f := last.Lead; f != nil {
		s += fmt.Sprintf("; lead: [%s] %s: %s", f.Severity, f.ID, f.Summary)
	}
	if h := HeapOutlook(w.Snapshots()); h != "" {
		s += "; " + h
	}
	return Sanitize(s)
}
