package cmd

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
)

var update = flag.Bool("update", false, "rewrite the golden files under fixtures/golden")

// testStreams returns Streams over buffers; tty says whether stdout claims
// to be a terminal.
func testStreams(stdin string, tty bool, env map[string]string) (*Streams, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return &Streams{
		In:       strings.NewReader(stdin),
		Out:      &out,
		ErrOut:   &errOut,
		OutIsTTY: tty,
		Getenv:   func(k string) string { return env[k] },
	}, &out, &errOut
}

func run(t *testing.T, s *Streams, args ...string) int {
	t.Helper()
	return Main(args, &Deps{Streams: s, Version: "test"})
}

func TestPmapFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    PmapOptions
		wantErr string
	}{
		{args: []string{"pmap", "123"}, want: PmapOptions{Target: "123", Format: report.FormatTable, Sort: pmap.SortRSS, Limit: 20}},
		{args: []string{"pmap", "123", "-o", "json"}, want: PmapOptions{Target: "123", Format: report.FormatJSON, Sort: pmap.SortRSS, Limit: 0}},
		{args: []string{"pmap", "123", "-o", "json", "--top", "5"}, want: PmapOptions{Target: "123", Format: report.FormatJSON, Sort: pmap.SortRSS, Limit: 5}},
		{args: []string{"pmap", "f.smaps", "--all", "--sort", "pss", "--class", "anon,heap", "--class", "stack", "--why", "-o", "md"},
			want: PmapOptions{Target: "f.smaps", Format: report.FormatMarkdown, Sort: pmap.SortPSS, Classes: []pmap.Class{"anon", "heap", "stack"}, Why: true}},
		{args: []string{"pmap", "-"}, want: PmapOptions{Target: "-", Format: report.FormatTable, Sort: pmap.SortRSS, Limit: 20}},
		{args: []string{"pmap"}, wantErr: "pmap needs one TARGET"},
		{args: []string{"pmap", "1", "2"}, wantErr: "got 2 arguments"},
		{args: []string{"pmap", "1", "--all", "--top", "3"}, wantErr: "--all and --top contradict"},
		{args: []string{"pmap", "1", "--sort", "color"}, wantErr: `unknown sort key "color"`},
		{args: []string{"pmap", "1", "-o", "yaml"}, wantErr: `unknown output format "yaml"`},
		{args: []string{"pmap", "1", "--top", "-1"}, wantErr: "--top must be positive"},
		{args: []string{"pmap", "1", "--bogus"}, wantErr: "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *PmapOptions
			if !parseOnly(t, runners{pmap: func(o *PmapOptions) error { got = o; return nil }}, tt.args, tt.wantErr) {
				return
			}
			got.Streams = nil
			if diff := cmp.Diff(&tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPmapGolden renders every capture in fixtures/smaps in every format and
// compares with fixtures/golden/pmap. Regenerate: go test ./cmd -update
func TestPmapGolden(t *testing.T) {
	inputs, err := filepath.Glob("../fixtures/smaps/*.smaps")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no captures in fixtures/smaps (%v)", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".smaps")
		for _, v := range goldenFormats {
			t.Run(name+"."+v.ext, func(t *testing.T) {
				args := v.args
				if v.ext == "txt" {
					args = []string{"--why"}
				}
				checkGolden(t, "pmap", name+"."+v.ext, append([]string{"pmap", in}, args...)...)
			})
		}
	}
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// TestPmapJSONContract pins the JSON field set documented in docs/json.md.
func TestPmapJSONContract(t *testing.T) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "pmap", "../fixtures/smaps/mapper.smaps", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	wantTop := []string{"classes", "mappings", "mappings_matched", "mappings_shown", "notes", "schema", "sort", "source", "totals", "warnings"}
	if diff := cmp.Diff(wantTop, keys(doc)); diff != "" {
		t.Errorf("top-level keys (-want +got):\n%s", diff)
	}
	if doc["schema"] != report.PmapSchema {
		t.Errorf("schema %v, want %s", doc["schema"], report.PmapSchema)
	}
	totals := doc["totals"].(map[string]any)
	for _, k := range []string{"mappings", "size_bytes", "rss_bytes", "pss_bytes", "swap_bytes", "private_dirty_bytes"} {
		if _, ok := totals[k]; !ok {
			t.Errorf("totals lacks %s", k)
		}
	}
	for _, c := range doc["classes"].([]any) {
		for _, k := range []string{"class", "mappings", "size_bytes", "rss_bytes", "pss_bytes"} {
			if _, ok := c.(map[string]any)[k]; !ok {
				t.Errorf("class %v lacks %s", c, k)
			}
		}
	}
	ms := doc["mappings"].([]any)
	if len(ms) != int(totals["mappings"].(float64)) {
		t.Errorf("JSON lists %d mappings of %v: it lists all by default", len(ms), totals["mappings"])
	}
	for _, m := range ms {
		m := m.(map[string]any)
		for _, k := range []string{"start", "end", "perms", "offset", "dev", "inode", "name", "class", "reason", "size_bytes", "rss_bytes", "pss_bytes", "swap_bytes", "vm_flags"} {
			if _, ok := m[k]; !ok {
				t.Errorf("mapping %v lacks %s", m["start"], k)
			}
		}
		if s := m["start"].(string); !strings.HasPrefix(s, "0x") {
			t.Errorf("start %q is not a 0x string", s)
		}
	}
}

func TestPmapColour(t *testing.T) {
	tests := []struct {
		name  string
		tty   bool
		env   map[string]string
		args  []string
		color bool
	}{
		{"terminal", true, nil, nil, true},
		{"pipe", false, nil, nil, false},
		{"NO_COLOR", true, map[string]string{"NO_COLOR": "1"}, nil, false},
		{"--no-color", true, nil, []string{"--no-color"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out, errOut := testStreams("", tt.tty, tt.env)
			if code := run(t, s, append([]string{"pmap", "../fixtures/smaps/mapper.smaps"}, tt.args...)...); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			if got := strings.Contains(out.String(), "\x1b["); got != tt.color {
				t.Errorf("escape sequences present = %v, want %v", got, tt.color)
			}
			if !strings.Contains(out.String(), "glibc-arena") {
				t.Error("table lacks the glibc-arena class")
			}
		})
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("\x7fELF\x02\x01\x01\x00binary"), 0o644)
	tests := []struct {
		name    string
		args    []string
		stdin   string
		code    int
		wantErr string
	}{
		{"missing file", []string{"pmap", filepath.Join(dir, "nope")}, "", ExitError, "no such file or directory"},
		{"garbage", []string{"pmap", garbage}, "", ExitError, garbage + ":1: expected a mapping header"},
		{"empty stdin", []string{"pmap", "-"}, "", ExitError, "-: no mappings in input"},
		{"directory", []string{"pmap", dir}, "", ExitError, "is a directory"},
		{"no such process", []string{"pmap", "1073741824"}, "", ExitError, "process 1073741824: no such process"},
		{"unknown class", []string{"pmap", "../fixtures/smaps/mapper.smaps", "--class", "bogus"}, "", ExitUsage, `unknown class "bogus"`},
		{"unknown command", []string{"frobnicate"}, "", ExitUsage, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, out, errOut := testStreams(tt.stdin, false, nil)
			code := run(t, s, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			msg := errOut.String()
			if !strings.HasPrefix(msg, "memdiag: ") || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.wantErr) {
				t.Errorf("stderr %q: want one line \"memdiag: …%s…\"", msg, tt.wantErr)
			}
			if out.Len() != 0 {
				t.Errorf("a failed command wrote to stdout: %q", out)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	s, out, _ := testStreams("", false, nil)
	if code := run(t, s, "--version"); code != 0 || !strings.Contains(out.String(), "test") {
		t.Errorf("--version: exit %d, output %q", code, out)
	}
}

func TestPmapStdinAndHostileNames(t *testing.T) {
	in := "7f0000000000-7f0000001000 rw-s 00000000 fe:00 12 /tmp/evil\x1b[2J name\nRss:  4 kB\nVmFlags: rd wr sh \n"
	s, out, errOut := testStreams(in, false, nil)
	if code := run(t, s, "pmap", "-"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out.String(), "\x1b") {
		t.Errorf("a raw escape from a mapping name reached the terminal:\n%q", out)
	}
	if !strings.Contains(out.String(), `/tmp/evil\x1b[2J name`) {
		t.Errorf("the name is not shown escaped:\n%s", out)
	}
}

// TestPmapLiveProcess runs the command on a real process and checks the
// JSON names it, finds its arenas and passes the RSS cross-check.
func TestPmapLiveProcess(t *testing.T) {
	proc := testprog.Start(t, testprog.Build(t, "mapper"), t.TempDir())
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "pmap", strconv.Itoa(proc.PID()), "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		PID     int    `json:"pid"`
		Command string `json:"command"`
		Classes []struct {
			Class    string `json:"class"`
			Mappings int    `json:"mappings"`
		} `json:"classes"`
		Check struct {
			Consistent bool `json:"consistent"`
		} `json:"rss_check"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.PID != proc.PID() || doc.Command != "mapper" || !doc.Check.Consistent {
		t.Errorf("pid %d command %q consistent %v; want %d mapper true", doc.PID, doc.Command, doc.Check.Consistent, proc.PID())
	}
	found := map[string]int{}
	for _, c := range doc.Classes {
		found[c.Class] = c.Mappings
	}
	// 4 arena heaps and their reserves; 4 thread stacks.
	if found["glibc-arena"] != 8 || found["thread-stack"] != 4 {
		t.Errorf("classes %v: want 8 glibc-arena and 4 thread-stack mappings", found)
	}
}
