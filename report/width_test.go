package report

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func widthTable() *Table {
	t := &Table{
		Title: "title",
		Columns: []Column{{Header: "PID", Align: Right}, {Header: "A", Align: Right, Drop: 2}, {Header: "B", Align: Right, Drop: 1},
			{Header: "NAME"}},
		Notes: []string{"a note of some length that wraps at 30 columns, figures 12.5 MiB kept whole"},
	}
	t.AddRow("1", "aaaa", "bbbb", "/usr/lib/jvm/java-21/bin/java -Xmx4g -jar app.jar")
	t.AddRow("22", "a", "b", "sh")
	return t
}

func TestTableFit(t *testing.T) {
	tests := []struct {
		width int
		want  string
	}{
		{0, `title
PID     A     B  NAME
  1  aaaa  bbbb  /usr/lib/jvm/java-21/bin/java -Xmx4g -jar app.jar
 22     a     b  sh
a note of some length that wraps at 30 columns, figures 12.5 MiB kept whole
`},
		// A wide enough terminal: nothing changes.
		{200, ""},
		// The name is clipped first, to what is left, as long as it keeps 16
		// columns.
		{40, `title
PID     A     B  NAME
  1  aaaa  bbbb  /usr/lib/jvm/java-21/b…
 22     a     b  sh
a note of some length that wraps at 30
  columns, figures 12.5 MiB kept whole
`},
		// Then A goes (the higher Drop), then B.
		{30, `title
PID     B  NAME
  1  bbbb  /usr/lib/jvm/java-…
 22     b  sh
a note of some length that
  wraps at 30 columns, figures
  12.5 MiB kept whole
left out to fit 30 columns: A
  (--wide shows every column)
`},
		{20, `title
PID  NAME
  1  /usr/lib/jvm/ja…
 22  sh
a note of some
  length that wraps
  at 30 columns,
  figures 12.5 MiB
  kept whole
left out to fit 20
  columns: A, B
  (--wide shows
  every column)
`},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := widthTable().WriteText(&b, Style{Width: tt.width}); err != nil {
			t.Fatal(err)
		}
		want := tt.want
		if want == "" {
			want = tests[0].want
		}
		if diff := cmp.Diff(want, b.String()); diff != "" {
			t.Errorf("width %d (-want +got):\n%s", tt.width, diff)
		}
	}
}

// TestTableFitStyled: with borders, each line of a table still fits.
func TestTableFitStyled(t *testing.T) {
	var b strings.Builder
	if err := widthTable().WriteText(&b, Style{Color: true, Width: 36}); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		if w := displayWidth(l); w > 36 {
			t.Errorf("%d columns: %q", w, l)
		}
	}
	if !strings.Contains(b.String(), "left out to fit 36 columns") {
		t.Errorf("no note of the columns left out:\n%s", b.String())
	}
}

// FuzzWrapText: wrapping loses no word and panics on nothing; every line
// fits unless it is one word.
func FuzzWrapText(f *testing.F) {
	f.Add("a note of some length that wraps at 30 columns, figures 12.5 MiB kept whole", 30)
	f.Add("x  MiB", 3)
	f.Add("    evidence:  1 B", 5)
	f.Fuzz(func(t *testing.T, s string, width int) {
		if width <= 0 || width > 500 {
			return
		}
		s = Sanitize(s)
		lines := wrapText(s, width)
		if got, want := strings.Fields(strings.Join(lines, " ")), strings.Fields(s); !cmp.Equal(got, want) && len(want) > 0 {
			t.Errorf("words %q, want %q", got, want)
		}
		// A line is over the width only when it holds one word (a figure
		// with its unit is one).
		ws := map[string]bool{}
		for _, w := range words(s) {
			ws[w] = true
		}
		for i, l := range lines {
			if i > 0 {
				l = strings.TrimPrefix(l, "  ")
			}
			if displayWidth(l) > width && !ws[l] {
				t.Errorf("line %q over %d columns", l, width)
			}
		}
	})
}

func TestClipText(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "…x-gnu/libc.so.6"}, // a path keeps its file name
		{"/usr/bin/java -Xmx4g -jar app.jar", "/usr/bin/java -…"},   // a command line its program
		{"short", "short"},
	} {
		if got := clipText(tt.in, 16); got != tt.want || displayWidth(got) > 16 {
			t.Errorf("clipText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestTableFitTitle: a long title wraps too, plain and styled.
func TestTableFitTitle(t *testing.T) {
	tb := &Table{Title: "memdiag oom: dmesg killed 15172 (hog) at 13936.814049 s after boot, in /kubepods/pod", Columns: []Column{{Header: "A"}}}
	tb.AddRow("x")
	for _, st := range []Style{{Width: 40}, {Width: 40, Color: true}} {
		var b strings.Builder
		if err := tb.WriteText(&b, st); err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(b.String(), "\n")
		if !strings.Contains(lines[1], "  13936.814049 s") || strings.Contains(b.String(), `\x0a`) {
			t.Errorf("color %v: title not wrapped:\n%s", st.Color, b.String())
		}
		for _, l := range lines {
			if displayWidth(l) > 40 {
				t.Errorf("color %v: %d columns: %q", st.Color, displayWidth(l), l)
			}
		}
	}
}
