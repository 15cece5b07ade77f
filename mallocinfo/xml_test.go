package mallocinfo

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const oneArena = `<malloc version="1">
<heap nr="0">
<sizes>
  <size from="17" to="32" total="2976" count="93"/>
  <unsorted from="5009" to="5009" total="5009" count="1"/>
</sizes>
<total type="fast" count="93" size="2976"/>
<total type="rest" count="2" size="123409"/>
<system type="current" size="135168"/>
<system type="max" size="135168"/>
<aspace type="total" size="135168"/>
<aspace type="mprotect" size="135168"/>
</heap>
<total type="fast" count="93" size="2976"/>
<total type="rest" count="2" size="123409"/>
<total type="mmap" count="1" size="135168"/>
<system type="current" size="135168"/>
<system type="max" size="135168"/>
<aspace type="total" size="135168"/>
<aspace type="mprotect" size="135168"/>
</malloc>
`

func TestParseOneDocument(t *testing.T) {
	info, err := Parse(strings.NewReader(oneArena), "in")
	if err != nil {
		t.Fatal(err)
	}
	want := &Info{
		Version: "1",
		Arenas: []Arena{{
			Nr:       0,
			Bins:     []Bin{{From: 17, To: 32, Total: 2976, Count: 93}},
			Unsorted: &Bin{From: 5009, To: 5009, Total: 5009, Count: 1},
			Fast:     Total{Count: 93, Size: 2976}, Rest: Total{Count: 2, Size: 123409},
			SystemSizes: SystemSizes{SystemCurrent: 135168, SystemMax: 135168, AspaceTotal: 135168, AspaceMprotect: 135168},
		}},
		Fast: Total{93, 2976}, Rest: Total{2, 123409}, Mmap: Total{1, 135168},
		SystemSizes: SystemSizes{SystemCurrent: 135168, SystemMax: 135168, AspaceTotal: 135168, AspaceMprotect: 135168},
		Line:        1,
	}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	s := Analyze(info)
	a := s.Arenas[0]
	// glibc's rest total and unsorted total each count the unsorted chunk's
	// PREV_INUSE bit: free = 2976 + 123409 − 1; top = free − Σ bins −
	// unsorted = 126384 − 2976 − 5008.
	if a.TopBytes != 118400 || a.RetainedFreeBytes != 2976+5008 || a.InUseBytes != 135168-126384 {
		t.Errorf("top %d retained %d in use %d; want 118400, 7984, %d", a.TopBytes, a.RetainedFreeBytes, a.InUseBytes, 135168-126384)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings on a consistent document: %v", s.Warnings)
	}
}

func TestScanLog(t *testing.T) {
	log := "2026-01-01 INFO starting\n" +
		"noise <malloc_info> is not a document\n" +
		"2026-01-01 INFO round 1\n" + oneArena +
		"2026-01-01 INFO round 2 dump follows: " + oneArena +
		"trailing line\n"
	var got []*Info
	err := Scan(strings.NewReader(log), "app.log", func(i *Info) error { got = append(got, i); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("found %d documents, want 2", len(got))
	}
	if got[0].Line != 4 || got[0].Label != "2026-01-01 INFO round 1" {
		t.Errorf("first: line %d label %q", got[0].Line, got[0].Label)
	}
	if got[1].Line != 25 || got[1].Label != "2026-01-01 INFO round 2 dump follows:" {
		t.Errorf("second: line %d label %q", got[1].Line, got[1].Label)
	}
}

// TestScanDocumentsMidLine: documents that end, or begin, mid-line — a
// whole document on one line, two on a line, text after one — are each
// read, with the lines after them counted right.
func TestScanDocumentsMidLine(t *testing.T) {
	flat := strings.ReplaceAll(oneArena, "\n", "")
	log := "a " + flat + " b " + flat + " after\nnext line\n" + oneArena[:len(oneArena)-1] + " tail\nlast\n" + oneArena
	var got []*Info
	err := Scan(strings.NewReader(log), "in", func(i *Info) error { got = append(got, i); return nil })
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	var labels []string
	for _, i := range got {
		lines, labels = append(lines, i.Line), append(labels, i.Label)
		if len(i.Arenas) != 1 || i.Mmap.Size != 135168 {
			t.Errorf("document at line %d: %+v", i.Line, i)
		}
	}
	if diff := cmp.Diff([]int{1, 1, 3, 25}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"a", "b", "next line", "last"}, labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

// TestParseBoundsUnknown: a document of many distinct unknown elements
// keeps maxUnknown warnings, not one each.
func TestParseBoundsUnknown(t *testing.T) {
	var b strings.Builder
	b.WriteString("<malloc version=\"1\">\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&b, "<x%d/>\n", i)
	}
	b.WriteString("</malloc>\n")
	info, err := Parse(strings.NewReader(b.String()), "in")
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Warnings) != maxUnknown+1 || !strings.Contains(info.Warnings[0], "more unknown elements") {
		t.Errorf("%d warnings, first %q", len(info.Warnings), info.Warnings[0])
	}
}

func TestParseTolerates(t *testing.T) {
	in := strings.Replace(oneArena, `<malloc version="1">`, `<malloc version="2">`, 1)
	in = strings.Replace(in, "</heap>", `<future type="x" size="1"/></heap>`, 1)
	info, err := Parse(strings.NewReader(in), "in")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(info.Warnings, "\n")
	for _, want := range []string{`version "2"`, "ignored unknown element <future> in <heap>"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		sentinel error
		want     string
	}{
		{"empty", "", ErrNoDocument, "in: no <malloc> document found"},
		{"log without documents", "just\nlog lines\n", ErrNoDocument, "no <malloc> document"},
		{"truncated", oneArena[:200], ErrTruncated, "in:1: <malloc> document starting here is not closed by line 7: truncated"},
		{"bad number", strings.Replace(oneArena, `size="135168"/>`, `size="lots"/>`, 1), ErrMalformed, `in:9: <system type="current">: attribute size="lots" is not a byte count`},
		{"missing attribute", strings.Replace(oneArena, ` count="93"/>`, `/>`, 1), ErrMalformed, "in:4: <size>: attribute count missing"},
		{"bad heap nr", strings.Replace(oneArena, `nr="0"`, `nr="x"`, 1), ErrMalformed, `in:2: <heap> nr "x" is not a number`},
		{"broken XML", strings.Replace(oneArena, "</sizes>", "</sizez>", 1), ErrMalformed, "in:6: XML: <sizes> closed by </sizez>"},
		{"wrong root", "<malloc version=\"1\"></malloc>\n", ErrMalformed, ""},
		{"long line", "log\n" + strings.Repeat("x", maxLineBytes+1) + "\n", ErrMalformed, "in:2: line longer than 1024 KiB: not malloc_info"},
		{"long line in a document", "<malloc version=\"1\">\n<heap nr=\"0\" x=\"" + strings.Repeat("x", maxLineBytes) + "\"/>\n</malloc>\n", ErrMalformed, "in:2: line longer than 1024 KiB: not malloc_info"},
		{"deep nesting", "<malloc version=\"1\">\n" + strings.Repeat("<a>\n", 100000) + strings.Repeat("</a>\n", 100000) + "</malloc>\n", ErrMalformed, "in:9: <a> nests 9 elements deep: malloc_info nests 4 deep"},
		{"truncated in a tag", oneArena[:40], ErrTruncated, "in:1: <malloc> document starting here is not closed by line 3: truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.in), "in")
			if tt.name == "wrong root" {
				// An empty <malloc> is valid: a process that never allocated.
				if err != nil {
					t.Errorf("empty document: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("%v does not wrap %v", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestAnalyzeFlagsInconsistency(t *testing.T) {
	in := strings.Replace(oneArena, `<total type="rest" count="2" size="123409"/>`, `<total type="rest" count="2" size="100"/>`, 1)
	info, err := Parse(strings.NewReader(in), "in")
	if err != nil {
		t.Fatal(err)
	}
	s := Analyze(info)
	if s.Arenas[0].TopBytes != 0 || !strings.Contains(strings.Join(s.Warnings, "\n"), "top chunk taken as 0") {
		t.Errorf("bins larger than free: top %d, warnings %v", s.Arenas[0].TopBytes, s.Warnings)
	}
}

// TestErrorsClipWhatTheyQuote: a message quotes a bad value or name, not a
// megabyte of it.
func TestErrorsClipWhatTheyQuote(t *testing.T) {
	long := strings.Repeat("9", 500000) + "x"
	for _, in := range []string{
		strings.Replace(oneArena, `nr="0"`, `nr="`+long+`"`, 1),
		strings.Replace(oneArena, `size="135168"/>`, `size="`+long+`"/>`, 1),
		strings.Replace(oneArena, "</sizes>", "</"+strings.Repeat("s", 500000)+">", 1),
	} {
		_, err := Parse(strings.NewReader(in), "in")
		if err == nil || len(err.Error()) > 300 {
			t.Errorf("error of %d bytes: %.300v", len(fmt.Sprint(err)), err)
		}
	}
}
