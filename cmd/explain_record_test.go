package cmd

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/record"
)

// TestExplainRecord: explain --pid PID --record puts the recorded stacks
// under malloc-in-use (drip keeps 10 KiB a millisecond while recorded).
func TestExplainRecord(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("explain --record needs root (CAP_BPF, CAP_PERFMON); not root")
	}
	p := testprog.Start(t, testprog.Build(t, "drip", "-fno-omit-frame-pointer"), "100000")
	s, out, errOut := testStreams("", false, nil)
	code := run(t, s, "explain", "--pid", strconv.Itoa(p.PID()), "--record", "2s", "--capture-malloc-info", "-o", "json")
	if code != 0 {
		if strings.Contains(errOut.String(), record.ErrNotPermitted.Error()) || strings.Contains(errOut.String(), record.ErrNoBTF.Error()) {
			t.Skipf("the kernel refuses recording here: %s", errOut)
		}
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Inputs struct {
			Record *struct {
				OutstandingBytes uint64 `json:"outstanding_bytes"`
				Stacks           []struct {
					Label string `json:"label"`
				} `json:"stacks"`
			} `json:"record"`
		} `json:"inputs"`
		Attribution []struct {
			Category string   `json:"category"`
			Evidence []string `json:"evidence"`
		} `json:"attribution"`
		Findings []struct {
			ID string `json:"id"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	rec := doc.Inputs.Record
	if rec == nil || len(rec.Stacks) == 0 || !strings.HasPrefix(rec.Stacks[0].Label, "drip_keeper") || rec.OutstandingBytes < 10*10240 {
		// one a millisecond on an idle machine; a loaded one sleeps longer
		t.Fatalf("inputs.record %+v, want drip_keeper's stack leading with ≥ 10 × 10 KiB", rec)
	}
	found := false
	for _, a := range doc.Attribution {
		if a.Category == "malloc-in-use" {
			for _, e := range a.Evidence {
				found = found || strings.Contains(e, "memdiag record") && strings.Contains(e, "drip_keeper")
			}
		}
	}
	if !found {
		t.Errorf("malloc-in-use does not name the recorded stack: %+v", doc.Attribution)
	}
	ids := ""
	for _, f := range doc.Findings {
		ids += f.ID + " "
	}
	if !strings.Contains(ids, "malloc-outstanding-by-stack") {
		t.Errorf("findings %s lack the recording's", ids)
	}
}
