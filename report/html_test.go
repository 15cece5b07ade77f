package report

import (
	"bytes"
	"flag"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/pmap"
)

var update = flag.Bool("update", false, "rewrite the golden files under fixtures/golden")

// hostile is what a target controls: its command name, its paths, its
// symbols. None of it may become markup.
const hostile = "</title><script>alert(1)</script><img src=x onerror=alert(2)>\"'&\x1b[31m"

// checkHTMLIsInert fails when page holds markup or a resource that is
// not memdiag's own.
func checkHTMLIsInert(t *testing.T, page string) {
	t.Helper()
	if n := strings.Count(page, "<script"); n != 1 {
		t.Errorf("%d <script elements, want memdiag's one", n)
	}
	for _, bad := range []string{"<img", "<script>alert", "\x1b", "http://", "https://", "url(", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %q", bad)
		}
	}
}

func hostileExplain() *ExplainView {
	in := &explain.Inputs{Source: hostile, PID: 42, Command: hostile, Notes: []string{hostile},
		Classes: []explain.ClassSum{{Class: hostile, Mappings: 1, SizeBytes: 8 << 20, RSSBytes: 4 << 20}}}
	r := &explain.Result{RSSBytes: 4 << 20, Attribution: []explain.Entry{
		{Category: explain.CatOther, Bytes: 4 << 20, Source: hostile, Evidence: []string{hostile}, Confidence: "high"}},
		Findings: []finding.Finding{{ID: "x", Severity: finding.High, Summary: hostile, Evidence: []string{hostile}, Advice: []string{hostile}}}}
	return &ExplainView{Inputs: in, Result: r}
}

// TestHTMLEscapesWhatTheTargetNames: command names, paths, notes, frames
// and findings are text on the page, never markup; their control
// characters are shown as escapes, as in the text.
func TestHTMLEscapesWhatTheTargetNames(t *testing.T) {
	pages := map[string]func(*bytes.Buffer) error{
		"explain": func(b *bytes.Buffer) error { return WriteExplain(b, FormatHTML, hostileExplain(), Style{}) },
		"flame": func(b *bytes.Buffer) error {
			return WriteFlamePage(b, &FlamePage{Title: hostile, Source: hostile, What: hostile,
				Stacks: []Stack{{Frames: []string{hostile, hostile + "2"}, Bytes: 1 << 20, Count: 1}}})
		},
		"watch": func(b *bytes.Buffer) error {
			return WriteWatchHTML(b, &WatchView{PID: 1, Command: hostile, Summary: hostile,
				Samples: []WatchSample{{Categories: []WatchCategory{{Category: hostile, Bytes: 1}}, Lead: hostile}}})
		},
	}
	for name, write := range pages {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := write(&b); err != nil {
				t.Fatal(err)
			}
			checkHTMLIsInert(t, b.String())
			if !strings.Contains(b.String(), `&lt;/title&gt;&lt;script&gt;`) || !strings.Contains(b.String(), `\x1b[31m`) {
				t.Errorf("the hostile name is not on the page as text")
			}
		})
	}
}

// TestMergeStacks: the icicle's frames are the stacks merged from the
// outermost caller, each as wide as the bytes below it, largest first.
func TestMergeStacks(t *testing.T) {
	c := newFlameChart([]Stack{
		{Frames: []string{"main", "parse", "mmap"}, Bytes: 10, Count: 1},
		{Frames: []string{"main", "parse", "grow"}, Bytes: 30, Count: 2},
		{Frames: []string{"main", "cache"}, Bytes: 60, Count: 3},
	})
	type frame struct {
		Name string
		X, W float64
		Row  int
	}
	var got []frame
	for _, f := range c.Frames {
		got = append(got, frame{f.Name, f.X, f.W, int(f.Y / flameRowH)})
	}
	want := []frame{{"all", 0, 1000, 0}, {"main", 0, 1000, 1}, {"cache", 0, 600, 2}, {"parse", 600, 400, 2},
		{"grow", 600, 300, 3}, {"mmap", 900, 100, 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if c.Total != 100 || !strings.Contains(strings.Join(c.Frames[3].Tip, "\n"), "in 3 mappings") {
		t.Errorf("total %d, parse's tooltip %q", c.Total, c.Frames[3].Tip)
	}
}

// TestFlameSizeBound: sixty thousand distinct stacks, a long recording,
// still make a page under 3 MiB — frames too narrow to see are left out
// and counted.
func TestFlameSizeBound(t *testing.T) {
	var stacks []Stack
	for i := range 60000 {
		stacks = append(stacks, Stack{Frames: []string{"main", fmt.Sprintf("worker_%d", i%97), fmt.Sprintf("alloc_site_%d", i), "mmap"},
			Bytes: uint64(4096 * (1 + i%13)), Count: 1})
	}
	var b bytes.Buffer
	if err := WriteFlamePage(&b, &FlamePage{Title: "t", Source: "s", What: "w", Stacks: stacks}); err != nil {
		t.Fatal(err)
	}
	t.Logf("flame page of 60,000 stacks: %d bytes", b.Len())
	if b.Len() >= 3<<20 {
		t.Errorf("page of %d bytes, want < 3 MiB", b.Len())
	}
	if !strings.Contains(b.String(), "too narrow to draw") || !strings.Contains(b.String(), "worker_0") {
		t.Errorf("the page does not say what it left out, or lacks the wide frames")
	}
}

// TestSortKey: sizes sort by bytes, percentages and counts by value.
func TestSortKey(t *testing.T) {
	for in, want := range map[string]string{"1.5 KiB": "1536", "+2.0 MiB/min": "2097152", "-1.0 KiB": "-1024", "12.5 %": "12.5",
		"7": "7", "glibc-arena": "", "": "", "3 apples": ""} {
		if got := sortKey(in); got != want {
			t.Errorf("sortKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestByteTicks: gridlines at round figures of the largest value's unit.
func TestByteTicks(t *testing.T) {
	ts, top := byteTicks(301<<20, 5)
	var labels []string
	for _, tk := range ts {
		labels = append(labels, tk.Label)
	}
	if diff := cmp.Diff([]string{"0 B", "100.0 MiB", "200.0 MiB", "300.0 MiB", "400.0 MiB"}, labels); diff != "" || top != 400<<20 {
		t.Errorf("ticks (-want +got):\n%s; top %d", diff, top)
	}
}

// watchFixture is a watch of a process whose malloc-free-retained grows.
func watchFixture() *WatchView {
	t0 := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	v := &WatchView{PID: 4242, Command: "server", Summary: "stopped after 140 s; RSS 300.0 MiB → 428.0 MiB; malloc-free-retained grew most: +128.0 MiB (+54.9 MiB/min)"}
	for i := range 15 {
		free := uint64(40+min(i*i, 128)) << 20
		rss := 300<<20 - 40<<20 + free
		cats := []WatchCategory{
			{"malloc-in-use", 180 << 20, 0, 0},
			{"malloc-free-retained", free, int64(free) - 40<<20, float64(int64(free)-40<<20) / float64(max(i, 1)*10) * 60},
			{"thread-stacks", 8 << 20, 0, 0},
			{"file-backed", 52 << 20, 0, 0},
			{"unexplained", 20 << 20, 0, 0},
		}
		lead := ""
		if i > 5 {
			lead = "[high] arena-retention: the arenas hold free memory"
		}
		v.Samples = append(v.Samples, WatchSample{Time: t0.Add(time.Duration(i) * 10 * time.Second), ElapsedSeconds: float64(i * 10), RSSBytes: rss, Categories: cats, Lead: lead})
	}
	return v
}

// TestWatchHTMLGolden renders a fixed watch and compares it with
// fixtures/golden/html/watch.html. Regenerate: go test ./report -update
func TestWatchHTMLGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteWatchHTML(&b, watchFixture()); err != nil {
		t.Fatal(err)
	}
	checkHTMLIsInert(t, b.String())
	golden := filepath.Join("..", "fixtures", "golden", "html", "watch.html")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update)", err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s differs (-want +got); if intended, go test ./report -update:\n%s", golden, diff)
	}
	text := html.UnescapeString(b.String())
	for _, fig := range []string{"168.0 MiB", "+128.0 MiB", "malloc-free-retained", "largest rise", "peak", "09:32:20"} {
		if !strings.Contains(text, fig) {
			t.Errorf("the page lacks %q", fig)
		}
	}
}

// explainPage renders the explain page of a process whose every name is s.
func explainPage(t *testing.T, s string) string {
	t.Helper()
	v := hostileExplain()
	in, r := v.Inputs, v.Result
	in.Source, in.Command, in.Notes[0], in.Classes[0].Class = s, s, s, pmap.Class(s)
	r.Attribution[0].Source, r.Attribution[0].Evidence[0] = s, s
	r.Findings[0].Summary, r.Findings[0].Evidence[0], r.Findings[0].Advice[0] = s, s, s
	var b bytes.Buffer
	if err := WriteExplain(&b, FormatHTML, v, Style{}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// FuzzHTMLNames: whatever the target names itself, the page has the same
// markup as for a plain name — its every tag is memdiag's.
func FuzzHTMLNames(f *testing.F) {
	for _, s := range []string{hostile, "plain", "<svg onload=alert(1)>", "]]><!--", "\u202egnp.exe", "a\x00b", "\xff\xfe", "{{.Title}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := strings.Count(explainPage(t, "x"), "<")
		if got := strings.Count(explainPage(t, s), "<"); got != want {
			t.Errorf("a name of %q makes %d tags, a plain one %d", s, got, want)
		}
	})
}

// TestEveryCategoryHasAColour: each category has a palette class of its
// own, which the stylesheet defines for figures and swatches alike.
func TestEveryCategoryHasAColour(t *testing.T) {
	css, err := htmlFiles.ReadFile("html/style.css")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]explain.Category{}
	for _, c := range explain.Categories() {
		k, ok := categoryClass[c]
		if !ok {
			t.Errorf("category %s has no colour (it would be drawn as other)", c)
			continue
		}
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share the colour %s", c, other, k)
		}
		seen[k] = c
		for _, rule := range []string{"." + k + " { fill: var(--" + k + ")", ".sw." + k + " { background: var(--" + k + ")"} {
			if !strings.Contains(string(css), rule) {
				t.Errorf("the stylesheet lacks %q", rule)
			}
		}
	}
}

// TestTooltipLines: a tooltip's lines break where memdiag breaks them; a
// newline in a name is shown as \x0a, not as a line of its own.
func TestTooltipLines(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFlamePage(&b, &FlamePage{Title: "t", Source: "s", What: "w",
		Stacks: []Stack{{Frames: []string{"forged\n100.0 % of all"}, Bytes: 1 << 20, Count: 1}}}); err != nil {
		t.Fatal(err)
	}
	want := "<title>forged\\x0a100.0 % of all\n1.0 MiB (100.0 % of all) in 1 mapping</title>"
	if !strings.Contains(html.UnescapeString(b.String()), want) {
		t.Errorf("the page lacks the tooltip %q", want)
	}
}
