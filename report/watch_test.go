package report

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/finding"
)

func watchSamples() []*explain.WatchSample {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.Local)
	var out []*explain.WatchSample
	for i := range 5 {
		d := int64(i) << 20
		s := &explain.WatchSample{N: i + 1, Time: t0.Add(time.Duration(i) * 10 * time.Second), Elapsed: time.Duration(i) * 10 * time.Second,
			RSSBytes: uint64(100<<20 + d), RSSDeltaBytes: d, RSSBytesPerMinute: float64(d) * 6 / float64(max(i, 1)),
			Categories: []explain.CategoryChange{{Category: explain.CatFileBacked, Bytes: 60 << 20},
				{Category: explain.CatUnexplained, Bytes: uint64(40<<20 + d), DeltaBytes: d, BytesPerMinute: float64(6 << 20)}}}
		if i == 0 {
			s.Categories[1].BytesPerMinute = 0
		}
		if i == 4 {
			// A source measured from now on: the columns change, a header says so.
			s.Categories = append([]explain.CategoryChange{{Category: explain.CatMallocInUse, Bytes: 1 << 20}}, s.Categories...)
			s.Lead = &finding.Finding{ID: "malloc-retains-free", Severity: finding.Medium, Summary: "x"}
		}
		out = append(out, s)
	}
	return out
}

// TestWatchLinesHeader: a header first, again every HeaderEvery lines,
// and when the categories change; one line per sample.
func TestWatchLinesHeader(t *testing.T) {
	var b strings.Builder
	ww := NewWatchWriter(&b, FormatTable, Style{})
	ww.HeaderEvery = 2
	for _, s := range watchSamples() {
		if err := ww.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	want := `TIME      ELAPSED         RSS     RSS/MIN  file-backed  unexplained  GROWING FASTEST                 LEAD
10:00:00       0s   100.0 MiB         0 B     60.0 MiB     40.0 MiB  -                               -
10:00:10      10s   101.0 MiB    +6.0 MiB     60.0 MiB     41.0 MiB  unexplained +6.0 MiB/min        -
TIME      ELAPSED         RSS     RSS/MIN  file-backed  unexplained  GROWING FASTEST                 LEAD
10:00:20      20s   102.0 MiB    +6.0 MiB     60.0 MiB     42.0 MiB  unexplained +6.0 MiB/min        -
10:00:30      30s   103.0 MiB    +6.0 MiB     60.0 MiB     43.0 MiB  unexplained +6.0 MiB/min        -
TIME      ELAPSED         RSS     RSS/MIN  malloc-in-use  file-backed  unexplained  GROWING FASTEST                 LEAD
10:00:40      40s   104.0 MiB    +6.0 MiB        1.0 MiB     60.0 MiB     44.0 MiB  unexplained +6.0 MiB/min        malloc-retains-free
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestWatchLinesNarrow: on a narrow terminal the categories go, smallest first,
// and a line says so; every line fits.
func TestWatchLinesNarrow(t *testing.T) {
	var b strings.Builder
	ww := NewWatchWriter(&b, FormatTable, Style{Width: 110})
	for _, s := range watchSamples()[:2] {
		if err := ww.Write(s); err != nil {
			t.Fatal(err)
		}
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if !strings.HasPrefix(lines[0], "(1 of 2 categories left out to fit 110 columns") || !strings.Contains(lines[1], "file-backed") || strings.Contains(lines[1], "unexplained") {
		t.Errorf("want file-backed (the larger) kept, unexplained left out:\n%s", b.String())
	}
	for _, l := range lines {
		if n := displayWidth(l); n > 110 {
			t.Errorf("%d columns: %q", n, l)
		}
	}
}
