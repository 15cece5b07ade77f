package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		in   uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{64 << 20, "64.0 MiB"}, {13 << 30, "13.0 GiB"}, {1 << 62, "4.0 EiB"}, {^uint64(0), "16.0 EiB"},
	}
	for _, tt := range tests {
		if got := Bytes(tt.in); got != tt.want {
			t.Errorf("Bytes(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPercent(t *testing.T) {
	if got := Percent(1, 3); got != "33.3 %" {
		t.Errorf("Percent(1, 3) = %q", got)
	}
	if got := Percent(1, 0); got != "-" {
		t.Errorf("Percent(1, 0) = %q, want -", got)
	}
}

// TestAppendStringMatchesEncodingJSON checks the hand-written escaper
// against encoding/json on the strings that reach it: mapping names.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "/usr/lib/libc.so.6", "/data/file with spaces.bin", `/odd\012name (deleted)`,
		"quote\"back\\slash", "ctl\x00\x01\x1b[2J\x7f", "tab\tnl\nret\r", "invalid \xff\xfe utf8",
		"日本語", "sep\u2028\u2029", "<html>&",
	} {
		got := appendString(nil, s)
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSuffix(buf.String(), "\n"); string(got) != want {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestSanitize(t *testing.T) {
	tests := map[string]string{
		"plain":           "plain",
		"esc\x1b[31mred":  `esc\x1b[31mred`,
		"nul\x00":         `nul\x00`,
		"bad\xffutf8":     `bad\xffutf8`,
		"日本":              "日本",
		"c1\u009bcontrol": `c1\x9bcontrol`,
	}
	for in, want := range tests {
		if got := Sanitize(in); got != want {
			t.Errorf("Sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTablePlainIsAligned(t *testing.T) {
	tb := &Table{Columns: []Column{{Header: "NAME"}, {Header: "SIZE", Align: Right}, {Header: "NOTE"}}}
	tb.AddRow("a", "1 B", "x")
	tb.AddRow("longer", "10.0 KiB", "")
	var b bytes.Buffer
	if err := tb.WriteText(&b, Style{}); err != nil {
		t.Fatal(err)
	}
	want := "NAME        SIZE  NOTE\n" +
		"a            1 B  x\n" +
		"longer  10.0 KiB  \n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

func TestTableMarkdownEscapes(t *testing.T) {
	tb := &Table{Title: "t", Columns: []Column{{Header: "NAME"}, {Header: "N", Align: Right}}, HasTotal: true}
	tb.AddRow("a|b", "1")
	tb.AddRow("total", "2")
	var b bytes.Buffer
	if err := tb.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "### t\n\n| NAME | N |\n| --- | ---: |\n| a\\|b | 1 |\n| **total** | **2** |\n\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
}

// TestLabelsAndCellsOfHostileNames: a process names itself; its name must
// not break the exposition (invalid UTF-8 made a parser drop every metric
// of the file) nor the terminal (a right-to-left override reverses text).
func TestLabelsAndCellsOfHostileNames(t *testing.T) {
	for _, tc := range []struct{ in, label, cell string }{
		{"\xffevil", `\\xffevil`, `\xffevil`},
		{"a\"b\\c\nd", `a\"b\\c\\x0ad`, `a"b\c\x0ad`},
		{"\u202elogo", `\\u202elogo`, `\u202elogo`},
		{"ok-name", "ok-name", "ok-name"},
	} {
		if got := escapeLabel(tc.in); got != tc.label || !utf8.ValidString(got) {
			t.Errorf("escapeLabel(%q) = %q, want %q", tc.in, got, tc.label)
		}
		if got := Sanitize(tc.in); got != tc.cell {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.cell)
		}
	}
}
