package allocator

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// truth reads the "name value" lines allocfree.c printed.
func truth(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, " ")
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	return out
}

func within(got, want uint64, share float64) bool {
	d := float64(got) - float64(want)
	return d <= share*float64(want) && -d <= share*float64(want)
}

// TestJemallocFixtures reads what jemalloc printed at exit for allocfree.c
// (fixtures/capture-allocators.sh), JSON and text: in use within 5 % of the
// program's own stats.allocated, in use plus what jemalloc keeps within
// 5 % of jemalloc's resident, and the freed blocks found as dirty pages.
func TestJemallocFixtures(t *testing.T) {
	tr := truth(t, "../fixtures/allocators/jemalloc.truth")
	for _, file := range []string{"jemalloc-stats.json", "jemalloc-stats.txt"} {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("../fixtures/allocators", file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			br := NewSniffer(f)
			if got := sniff(br); got != formatJemalloc {
				t.Fatalf("sniffed %q", got)
			}
			s, err := parseJemalloc(br, file)
			if err != nil {
				t.Fatal(err)
			}
			if s.Allocator != Jemalloc || !strings.HasPrefix(s.Version, "5.") {
				t.Errorf("allocator %q version %q", s.Allocator, s.Version)
			}
			if !within(s.InUseBytes, tr["allocated"], 0.05) {
				t.Errorf("in use %d, the program's stats.allocated %d", s.InUseBytes, tr["allocated"])
			}
			if sum := s.InUseBytes + s.RetainedBytes(); !within(sum, s.ResidentBytes, 0.05) {
				t.Errorf("in use + kept %d, jemalloc's resident %d (parts %+v)", sum, s.ResidentBytes, s.Parts)
			}
			dirty, _ := s.Part("dirty_pages")
			if dirty.Bytes < 80<<20 || s.Parts[0].Name != "dirty_pages" {
				t.Errorf("dirty pages %d B, parts %+v: the ~90 MiB freed should lead", dirty.Bytes, s.Parts)
			}
			if v, _ := s.Setting("dirty_decay_ms"); v != "-1" {
				t.Errorf("dirty_decay_ms %q, want -1", v)
			}
			fs := Findings(s)
			if len(fs) != 1 || fs[0].ID != "allocator-retention" || !strings.Contains(fs[0].Summary, "dirty pages") ||
				!strings.Contains(strings.Join(fs[0].Advice, "\n"), "dirty_decay_ms is -1") {
				t.Errorf("findings %+v", fs)
			}
		})
	}
}

func TestTcmallocFixture(t *testing.T) {
	tr := truth(t, "../fixtures/allocators/tcmalloc.truth")
	f, err := os.Open("../fixtures/allocators/tcmalloc-stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	br := NewSniffer(f)
	if got := sniff(br); got != formatTcmalloc {
		t.Fatalf("sniffed %q", got)
	}
	s, err := parseTcmalloc(br, "tcmalloc-stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !within(s.InUseBytes, tr["allocated"], 0.05) {
		t.Errorf("in use %d, the program's generic.current_allocated_bytes %d", s.InUseBytes, tr["allocated"])
	}
	if s.InUseBytes+s.RetainedBytes() != s.ResidentBytes || len(s.Warnings) != 0 {
		t.Errorf("in use %d + kept %d ≠ actual %d; warnings %v", s.InUseBytes, s.RetainedBytes(), s.ResidentBytes, s.Warnings)
	}
	if s.Parts[0].Name != "page_heap_free" {
		t.Errorf("parts %+v: the page heap's free pages should lead", s.Parts)
	}
	if fs := Findings(s); len(fs) != 1 || !strings.Contains(fs[0].Summary, "page heap") {
		t.Errorf("findings %+v", fs)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		tc       bool
		want     error
		msg      string
	}{
		{"empty", "", false, ErrMalformed, "empty"},
		{"cut JSON", `{"jemalloc": {"stats": {"allocated": 1`, false, ErrMalformed, "JSON"},
		{"JSON without stats", `{"jemalloc": {}}`, false, ErrMalformed, `no "jemalloc"."stats"`},
		{"JSON without resident", `{"jemalloc": {"stats": {"allocated": 1, "active": 2}}}`, false, ErrMalformed, `lacks "resident"`},
		{"text without totals", "___ Begin jemalloc statistics ___\nVersion: \"5\"\n", false, ErrUnrecognized, "no \"Allocated"},
		{"bad totals", "Allocated: lots, active: 1, resident: 2\n", false, ErrMalformed, `Allocated "lots" is not a byte count`},
		{"bad decay line", "Allocated: 1, active: 1, resident: 1\narenas[0]:\n   dirty: 10000 many\n", false, ErrMalformed, `"many" is not a number`},
		{"tcmalloc without totals", "MALLOC: 5 (0.0 MiB) Bytes in page heap freelist\n", true, ErrUnrecognized, "not tcmalloc"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.tc {
				_, err = parseTcmalloc(strings.NewReader(tt.in), "in")
			} else {
				_, err = parseJemalloc(strings.NewReader(tt.in), "in")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "in") {
				t.Errorf("got %v, want %v with %q", err, tt.want, tt.msg)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, file := range []string{"jemalloc-stats.json", "jemalloc-stats.txt", "tcmalloc-stats.txt"} {
		b, err := os.ReadFile(filepath.Join("../fixtures/allocators", file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b[:min(len(b), 8192)])
		f.Add(b)
	}
	known := map[string]bool{PartDirtyPages: true, PartMuzzyPages: true, PartFragmentation: true, PartMetadata: true,
		PartPageHeapFree: true, PartCentralCacheFree: true, PartTransferCacheFree: true, PartThreadCacheFree: true}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, parse := range []func() (*Stats, error){
			func() (*Stats, error) { return parseJemalloc(bytes.NewReader(in), "fuzz") },
			func() (*Stats, error) { return parseTcmalloc(bytes.NewReader(in), "fuzz") },
		} {
			s, err := parse()
			if err != nil {
				if err.Error() == "" {
					t.Fatal("empty error")
				}
				continue
			}
			// The model's bounds: parts named by the constants others
			// join on, largest first, and the retained sum no more than
			// the parts hold.
			var sum uint64
			for i, p := range s.Parts {
				if !known[p.Name] {
					t.Fatalf("part %q is none of the Part constants", p.Name)
				}
				if i > 0 && p.Bytes > s.Parts[i-1].Bytes {
					t.Fatalf("parts out of order: %+v", s.Parts)
				}
				sum += p.Bytes
			}
			if r := s.RetainedBytes(); r > sum {
				t.Fatalf("retained %d B > Σ parts %d B", r, sum)
			}
			_ = Findings(s)
		}
		// The parser list answers as the parser sniff picks, and says
		// "not mine" exactly when sniff names neither format.
		format := sniff(NewSniffer(bytes.NewReader(in)))
		s, err := Parse(NewSniffer(bytes.NewReader(in)), "fuzz")
		switch format {
		case formatJemalloc, formatTcmalloc:
			if errors.Is(err, ErrUnrecognized) {
				t.Fatalf("sniffed %s, but Parse says unrecognized", format)
			}
			if err == nil && s.Allocator != Kind(format) {
				t.Fatalf("sniffed %s, parsed as %s", format, s.Allocator)
			}
		default:
			if !errors.Is(err, ErrUnrecognized) || s != nil {
				t.Fatalf("sniffed %q, Parse = %v, %v; want ErrUnrecognized", format, s, err)
			}
		}
	})
}

// TestJemallocAdviceFitsTheFigures is issue 20's Redis case: 85 % of its
// keys deleted, jemalloc keeps 565 MB as fragmentation inside active pages
// and 160 KiB dirty, with background threads on at run time though off as
// a start-up option. The advice must say a purge cannot return
// fragmentation and what can; none of decay, background_thread or trim.
func TestJemallocAdviceFitsTheFigures(t *testing.T) {
	f := &jemallocFigures{Allocated: 140 << 20, Active: 705 << 20, Resident: 723 << 20, Metadata: 18 << 20,
		DirtyPages: 40, Page: 4096, Options: map[string]string{"background_thread": "false", runtimeBackgroundThread: "true", "dirty_decay_ms": "10000"}}
	fs := Findings(fromJemalloc(f, "redis INFO"))
	if len(fs) == 0 {
		t.Fatal("no finding")
	}
	advice := strings.Join(fs[0].Advice, "\n")
	for _, bad := range []string{"Turn on background_thread", "dirty_decay_ms", "purges every arena"} {
		if strings.Contains(advice, bad) {
			t.Errorf("advice says %q with 160 KiB dirty and background threads running:\n%s", bad, advice)
		}
	}
	for _, good := range []string{"does not return it", "activedefrag", "narenas"} {
		if !strings.Contains(advice, good) {
			t.Errorf("advice lacks %q:\n%s", good, advice)
		}
	}
	// With dirty pages to return and the threads off, the same advice is due.
	f.DirtyPages, f.Options[runtimeBackgroundThread] = 100<<20/4096, "false"
	advice = strings.Join(Findings(fromJemalloc(f, "x"))[0].Advice, "\n")
	for _, want := range []string{"Turn on background_thread", "purges every arena"} {
		if !strings.Contains(advice, want) {
			t.Errorf("with 100 MiB dirty, advice lacks %q:\n%s", want, advice)
		}
	}
}

// TestJemallocTextRuntimeBackgroundThread: the text form's option line
// gives the run-time value in parentheses.
func TestJemallocTextRuntimeBackgroundThread(t *testing.T) {
	b, err := os.ReadFile("../fixtures/allocators/jemalloc-stats.txt")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), "opt.background_thread: false (background_thread: false)", "opt.background_thread: false (background_thread: true)", 1)
	s, err := parseJemalloc(strings.NewReader(text), "x")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Setting(runtimeBackgroundThread); v != "true" {
		t.Errorf("run-time background_thread %q, want true", v)
	}
	if v, _ := s.Setting("background_thread"); v != "false" {
		t.Errorf("opt.background_thread %q, want false", v)
	}
}
