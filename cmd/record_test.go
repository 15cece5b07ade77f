package cmd

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/record"
)

func TestRecordFlags(t *testing.T) {
	tests := []struct {
		args    []string
		check   func(o *RecordOptions) string
		wantErr string
	}{
		{args: []string{"record", "--pid", "7"}, check: func(o *RecordOptions) string {
			if o.Options.PID != 7 || len(o.Command) != 0 || o.Options.RingBytes != 16<<20 || o.Options.MaxOutstanding != record.DefaultMaxOutstanding || o.StackLimit != 20 || o.Options.FollowForks {
				return "defaults"
			}
			return ""
		}},
		{args: []string{"record", "--duration", "30s", "--interval", "5s", "--pprof", "h.pb.gz", "--ring-buffer", "64M", "--min-size", "1K",
			"--sample-bytes", "512K", "--no-mappings", "--follow-forks", "--", "./prog", "-x", "--flag"}, check: func(o *RecordOptions) string {
			r := o.Options
			if r.Duration != 30*time.Second || r.Interval != 5*time.Second || o.PprofPath != "h.pb.gz" || r.RingBytes != 64<<20 ||
				r.MinSize != 1024 || r.SampleBytes != 512<<10 || !r.NoMappings || !r.FollowForks || !cmp.Equal(o.Command, []string{"./prog", "-x", "--flag"}) {
				return "flags not applied"
			}
			return ""
		}},
		{args: []string{"record"}, wantErr: "needs --pid PID or -- COMMAND"},
		{args: []string{"record", "prog"}, wantErr: "goes after --"},
		{args: []string{"record", "--pid", "3", "--", "prog"}, wantErr: "not both"},
		{args: []string{"record", "--pid", "-3"}, wantErr: "a process id is a positive number"},
		{args: []string{"record", "--pid", "3", "--ring-buffer", "1"}, wantErr: "--ring-buffer"},
		{args: []string{"record", "--pid", "3", "--sample-bytes", "lots"}, wantErr: "--sample-bytes"},
		{args: []string{"record", "--pid", "3", "--duration", "-1s"}, wantErr: "negative"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var got *RecordOptions
			if parseOnly(t, runners{record: func(o *RecordOptions) error { got = o; return nil }}, tt.args, tt.wantErr) {
				if msg := tt.check(got); msg != "" {
					t.Errorf("%s: %+v", msg, got)
				}
			}
		})
	}
}

// TestRecordCommandJSONAndPprof records a program started under memdiag
// record -- CMD (its start-up included): the JSON contract, the leading
// stack, and a profile go tool pprof opens.
func TestRecordCommandJSONAndPprof(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memdiag record needs root (CAP_BPF, CAP_PERFMON); not root")
	}
	bin := testprog.Build(t, "keepchurn", "-fno-omit-frame-pointer")
	prof := filepath.Join(t.TempDir(), "heap.pb.gz")
	// Standard input is empty: the program exits once done, which ends
	// the recording.
	s, out, errOut := testStreams("", false, nil)
	code := run(t, s, "record", "-o", "json", "--pprof", prof, "--", bin, "3000", "2000")
	if code != 0 {
		if strings.Contains(errOut.String(), record.ErrNotPermitted.Error()) || strings.Contains(errOut.String(), record.ErrNoBTF.Error()) {
			t.Skipf("the kernel refuses recording here: %s", errOut)
		}
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := []string{"alloc_bytes", "command", "counts", "duration_seconds", "exited", "final", "findings", "follow_forks", "mappings", "min_size_bytes", "notes",
		"outstanding_bytes", "outstanding_count", "pid", "probes", "processes", "sample_bytes", "schema", "stacks"}
	if diff := cmpKeys(want, doc); diff != "" {
		t.Errorf("top-level keys (-want +got):\n%s", diff)
	}
	if doc["schema"] != "memdiag.record/v1" || doc["exited"] != true || doc["command"] != "keepchurn" {
		t.Errorf("schema %v, exited %v, command %v", doc["schema"], doc["exited"], doc["command"])
	}
	stacks := doc["stacks"].([]any)
	if len(stacks) == 0 {
		t.Fatal("no stacks")
	}
	top := stacks[0].(map[string]any)
	if !strings.HasPrefix(top["label"].(string), "keeper ") || top["outstanding_bytes"].(float64) != 3000*10240 {
		t.Errorf("leading stack %v", top)
	}
	if m, ok := doc["mappings"].(map[string]any); !ok || m["schema"] != "memdiag.trace/v1" {
		t.Errorf("mappings are not trace's document: %v", doc["mappings"])
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not found (%v): the profile is not opened with go tool pprof", err)
	}
	top10, err := exec.Command(goBin, "tool", "pprof", "-top", "-sample_index=inuse_space", prof).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool pprof -top: %v\n%s", err, top10)
	}
	if !strings.Contains(string(top10), "keeper") {
		t.Errorf("go tool pprof -top does not show keeper:\n%s", top10)
	}
}

func TestRecordNoProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("memdiag record needs root; not root")
	}
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "record", "--pid", "999999999"); code != ExitError {
		t.Errorf("exit %d, want %d: %s", code, ExitError, errOut)
	}
	if !strings.Contains(errOut.String(), "999999999") {
		t.Errorf("error does not name the process: %s", errOut)
	}
}
