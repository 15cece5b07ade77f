package cmd

import (
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
)

// htmlCases are the HTML pages rendered from the fixtures: each report,
// and each of its shapes (one document or a log, stacks or none).
var htmlCases = []struct {
	name string
	args []string
}{
	{"explain-story1", []string{"explain", "--smaps", "../fixtures/smaps/arenas.smaps", "--malloc-info", "../fixtures/mallocinfo/rounds.log", "--cores", "2"}},
	{"explain-jvm", []string{"explain", "--smaps", "../fixtures/smaps/mapper.smaps", "--nmt", "../fixtures/jvm/g1.nmt", "--heap-info", "../fixtures/jvm/g1.heap_info"}},
	{"diff-grower", []string{"diff", "../fixtures/diff/grower-before.json", "../fixtures/diff/grower-after.json", "--fail-on", "rss:+1000%"}},
	{"diff-trim", []string{"diff", "../fixtures/diff/trim-before.json", "../fixtures/diff/trim-after.json", "--all"}},
	{"mallocinfo-rounds", []string{"mallocinfo", "../fixtures/mallocinfo/rounds.log", "--cores", "2"}},
	{"mallocinfo-arenas", []string{"mallocinfo", "../fixtures/mallocinfo/arenas.xml", "--cores", "2"}},
	{"mallocinfo-jemalloc", []string{"mallocinfo", "../fixtures/allocators/jemalloc-stats.json"}},
	{"trace-leaker-cg", []string{"trace", "../fixtures/traces/leaker-cg.perf"}},
	{"trace-leaker-ff", []string{"trace", "../fixtures/traces/leaker-ff"}},
}

// TestHTMLGolden renders every page and compares it with
// fixtures/golden/html. Regenerate: go test ./cmd -update
func TestHTMLGolden(t *testing.T) {
	for _, c := range htmlCases {
		t.Run(c.name, func(t *testing.T) {
			checkGolden(t, "html", c.name+".html", append(c.args, "-o", "html")...)
		})
	}
}

// figure is what the text output states as a figure: a size, a share,
// a count.
var figure = regexp.MustCompile(`[+-]?\d+(?:\.\d+)?(?: (?:B|KiB|MiB|GiB|TiB|%))?`)

// pageText is the text a reader sees on page: the tags dropped, the
// entities decoded.
func pageText(page string) string {
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(page, "\n"))
}

// textFigures runs args for the text output and lists its figures.
func textFigures(t *testing.T, args []string) []string {
	t.Helper()
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	return figure.FindAllString(out.String(), -1)
}

// renderHTML runs args with -o html.
func renderHTML(t *testing.T, args []string) string {
	t.Helper()
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, append(args, "-o", "html")...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	return out.String()
}

// missingFigures lists the figures of want that text lacks.
func missingFigures(want []string, text string) []string {
	var missing []string
	for _, f := range want {
		if !strings.Contains(text, f) {
			missing = append(missing, f)
		}
	}
	return missing
}

// TestHTMLHoldsEveryFigure: every figure of a report's text is on its
// page too — the page adds pictures, it leaves nothing out — and the page
// names nothing to fetch.
func TestHTMLHoldsEveryFigure(t *testing.T) {
	for _, c := range htmlCases {
		t.Run(c.name, func(t *testing.T) {
			want := textFigures(t, c.args)
			if len(want) < 5 {
				t.Fatalf("only %d figures in the text: %q", len(want), want)
			}
			page := renderHTML(t, c.args)
			// Self-contained: nothing named that a browser would fetch.
			for _, fetch := range []string{"://", "url(", "@import", " src=", " href="} {
				if strings.Contains(page, fetch) {
					t.Errorf("the page holds %q", fetch)
				}
			}
			if m := missingFigures(want, pageText(page)); len(m) > 0 {
				t.Errorf("the page lacks %d of the text's %d figures: %q", len(m), len(want), m)
			}
		})
	}
}

// TestHTMLSizeBound: a process of 60,000 mappings makes an explain page
// under 3 MiB: the page holds classes and categories, not mappings.
func TestHTMLSizeBound(t *testing.T) {
	path := filepath.Join(t.TempDir(), "huge.smaps")
	if err := os.WriteFile(path, syntheticSmaps(60000), 0o644); err != nil {
		t.Fatal(err)
	}
	page := renderHTML(t, []string{"explain", "--smaps", path})
	t.Logf("explain page of 60,000 mappings: %d bytes", len(page))
	if len(page) >= 3<<20 {
		t.Errorf("page of %d bytes for 60,000 mappings, want < 3 MiB", len(page))
	}
	if !strings.Contains(pageText(page), "60000") {
		t.Errorf("the page does not count the 60,000 mappings")
	}
}

// syntheticSmaps is an smaps of n mappings: anonymous ones, file-backed
// ones and thread stacks with their guards, 64 KiB each, half resident.
func syntheticSmaps(n int) []byte {
	var b strings.Builder
	addr := uint64(0x7f0000000000)
	for i := range n {
		name := ""
		switch i % 4 {
		case 1:
			name = "/usr/lib/libdemo" + strconv.Itoa(i%50) + ".so"
		case 2:
			name = "[anon:worker " + strconv.Itoa(i) + "]"
		}
		perms := "rw-p"
		if i%4 == 1 {
			perms = "r-xp"
		}
		b.WriteString(strconv.FormatUint(addr, 16) + "-" + strconv.FormatUint(addr+64<<10, 16) + " " + perms + " 00000000 00:00 0          " + name + "\n")
		b.WriteString("Size:                 64 kB\nKernelPageSize:        4 kB\nMMUPageSize:           4 kB\nRss:                  32 kB\nPss:                  32 kB\n" +
			"Pss_Dirty:            32 kB\nShared_Clean:          0 kB\nShared_Dirty:          0 kB\nPrivate_Clean:         0 kB\nPrivate_Dirty:        32 kB\n" +
			"Referenced:           32 kB\nAnonymous:            32 kB\nKSM:                   0 kB\nLazyFree:              0 kB\nAnonHugePages:         0 kB\n" +
			"ShmemPmdMapped:        0 kB\nFilePmdMapped:         0 kB\nShared_Hugetlb:        0 kB\nPrivate_Hugetlb:       0 kB\nSwap:                  0 kB\n" +
			"SwapPss:               0 kB\nLocked:                0 kB\nTHPeligible:           0\nVmFlags: rd wr mr mw me ac sd\n")
		addr += 128 << 10
	}
	return []byte(b.String())
}

// TestSnapshotHTML: snapshot -o html writes the snapshot to FILE and the
// explain page to standard output; without FILE it says what it needs.
func TestSnapshotHTML(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.json")
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "snapshot", "--smaps", "../fixtures/smaps/arenas.smaps", file, "-o", "html"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(file); err != nil || !strings.HasPrefix(out.String(), "<!DOCTYPE html>") || !strings.Contains(out.String(), "memdiag explain") {
		t.Errorf("snapshot file: %v; page: %.80q", err, out.String())
	}
	s, _, errOut = testStreams("", false, nil)
	if code := run(t, s, "snapshot", "--smaps", "../fixtures/smaps/arenas.smaps", "-o", "html"); code != ExitUsage || !strings.Contains(errOut.String(), "give FILE") {
		t.Errorf("without FILE: exit %d, %q", code, errOut)
	}
}

// TestWatchHTML samples a growing process: the page, written when the
// watch ends, holds every sample.
func TestWatchHTML(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "grower"), "400")
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "watch", "--pid", strconv.Itoa(p.PID()), "--interval", "200ms", "--count", "3", "-o", "html"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	page := out.String()
	if n := strings.Count(page, "<circle"); n != 3 {
		t.Errorf("%d samples drawn, want 3", n)
	}
	text := pageText(page)
	for _, want := range []string{"memdiag watch: process " + strconv.Itoa(p.PID()) + " (grower)", "unexplained", "stopped after"} {
		if !strings.Contains(text, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if !strings.Contains(errOut.String(), "stopped after") {
		t.Errorf("the summary is not on stderr: %q", errOut)
	}
}

// TestHTMLFormatWhereOffered: -o html is taken by the commands that have
// a page, named in their error for a wrong format, refused by the others.
func TestHTMLFormatWhereOffered(t *testing.T) {
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "diff", "a.json", "b.json", "-o", "htm"); code != ExitUsage || !strings.Contains(errOut.String(), "also takes html") {
		t.Errorf("diff -o htm: exit %d, %q", code, errOut)
	}
	s, _, errOut = testStreams("", false, nil)
	if code := run(t, s, "pmap", "../fixtures/smaps/mapper.smaps", "-o", "html"); code != ExitUsage || !strings.Contains(errOut.String(), `unknown output format "html"`) {
		t.Errorf("pmap -o html: exit %d, %q", code, errOut)
	}
}
