package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/syscalltrace"
)

func TestTraceFlags(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(o *TraceOptions) string
		wantErr string
	}{
		{args: []string{"trace", "a.strace", "b"}, check: func(o *TraceOptions) string {
			if len(o.Paths) != 2 || o.Trace != syscalltrace.FormatAuto || o.GroupBy != syscalltrace.GroupAuto || o.PerProcess || o.Top != 20 {
				return "defaults"
			}
			return ""
		}},
		{args: []string{"trace", "x", "--format", "perf-trace", "--group-by", "leaf", "--at", "01:02:03.5", "--pprof", "p.pb.gz", "--pid", "7", "--per-process"}, check: func(o *TraceOptions) string {
			if o.Trace != syscalltrace.FormatPerfTrace || o.GroupBy != syscalltrace.GroupLeaf || !o.HasAt || o.At != 3723.5 || o.PprofPath != "p.pb.gz" || o.PID != 7 || !o.PerProcess {
				return "flags not applied"
			}
			return ""
		}},
		{args: []string{"trace"}, wantErr: "trace needs a FILE"},
		{args: []string{"trace", "x", "--format", "ltrace"}, wantErr: `--format: unknown format "ltrace": want strace, perf-trace, sysdig, sysdig-json or bpftrace`},
		{args: []string{"trace", "x", "--group-by", "color"}, wantErr: `--group-by: unknown grouping "color"`},
		{args: []string{"trace", "x", "--at", "yesterday"}, wantErr: `--at "yesterday"`},
		{args: []string{"trace", "x", "--at", "99:99"}, wantErr: `--at "99:99"`},
		{args: []string{"trace", "x", "--at", "12:75:00"}, wantErr: `--at "12:75:00"`},
		{args: []string{"trace", "x", "--at", "5s"}, wantErr: `--at "5s"`},
		{args: []string{"trace", "x", "--pid", "1", "--smaps", "f"}, wantErr: "give one"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *TraceOptions
			if parseOnly(t, runners{trace: func(o *TraceOptions) error { got = o; return nil }}, tt.args, tt.wantErr) {
				if msg := tt.check(got); msg != "" {
					t.Errorf("%s: %+v", msg, got)
				}
			}
		})
	}
}

// TestTraceGolden renders captured traces in every format. Regenerate:
// go test ./cmd -update
func TestTraceGolden(t *testing.T) {
	for _, in := range []string{"leaker-k.strace", "leaker-f-tt-T.strace.gz", "leaker-cg.perf", "leaker-ff", "leaker.bt"} {
		for _, v := range goldenFormats {
			t.Run(in+"."+v.ext, func(t *testing.T) {
				checkGolden(t, "trace", in+"."+v.ext, append([]string{"trace", "../fixtures/traces/" + in}, v.args...)...)
			})
		}
	}
}

// TestTraceJSONContract pins the fields docs/json.md promises.
func TestTraceJSONContract(t *testing.T) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "trace", "../fixtures/traces/leaker-k.strace", "-o", "json", "--smaps", "../fixtures/smaps/mapper.smaps"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{"brk_bytes", "churn", "events", "failed_calls", "findings", "format", "group_by", "groups", "mappings", "notes", "outstanding", "peak_bytes", "peak_time", "preexisting", "processes", "schema", "source", "spaces_are", "timeline"}
	if diff := cmp.Diff(want, keys(doc)); diff != "" {
		t.Errorf("top-level keys (-want +got):\n%s", diff)
	}
	if doc["spaces_are"] != "processes" {
		t.Errorf("spaces_are %v, want processes (tasks share one space by default)", doc["spaces_are"])
	}
	o := doc["outstanding"].(map[string]any)
	for _, k := range []string{"count", "bytes", "anon_bytes", "file_bytes", "resident_bytes"} {
		if _, ok := o[k]; !ok {
			t.Errorf("outstanding lacks %s", k)
		}
	}
	for _, g := range doc["groups"].([]any) {
		for _, k := range []string{"key", "count", "bytes", "frames"} {
			if _, ok := g.(map[string]any)[k]; !ok {
				t.Errorf("group lacks %s", k)
			}
		}
	}
	for _, m := range doc["mappings"].([]any) {
		for _, k := range []string{"pid", "start", "end", "size_bytes", "prot", "flags", "name", "frames"} {
			if _, ok := m.(map[string]any)[k]; !ok {
				t.Errorf("mapping lacks %s", k)
			}
		}
	}
}

func TestTracePprofIsWrittenWhole(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "leaks.pb.gz")
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "trace", "../fixtures/traces/leaker-k.strace", "--pprof", prof); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	f, err := os.Open(prof)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Sample) == 0 || p.SampleType[1].Type != "outstanding" {
		t.Errorf("profile: %d samples, types %v", len(p.Sample), p.SampleType)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the profile: %v", entries)
	}
	// An unwritable destination fails cleanly, leaving nothing.
	s, _, errOut = testStreams("", false, nil)
	if code := run(t, s, "trace", "../fixtures/traces/leaker-k.strace", "--pprof", filepath.Join(dir, "missing", "x.pb.gz")); code != ExitError || !strings.Contains(errOut.String(), "writing") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestTraceBadInput(t *testing.T) {
	s, out, errOut := testStreams("hello\nworld\n", false, nil)
	if code := run(t, s, "trace", "-"); code != ExitError || out.Len() != 0 || !strings.Contains(errOut.String(), "not a trace memdiag reads") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

// TestTraceAtBeforeFirstCall: --at 5 on a trace stamped HH:MM:SS cuts
// before the first call; the error says where the calls start, not that
// the trace has none.
func TestTraceAtBeforeFirstCall(t *testing.T) {
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "trace", "../fixtures/traces/leaker-f-tt-T.strace", "--at", "5"); code != ExitError {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if msg := errOut.String(); !strings.Contains(msg, "no memory system call at or before --at 5 s; the first is at") || strings.Contains(msg, "was it captured") {
		t.Errorf("message %q", msg)
	}
}
