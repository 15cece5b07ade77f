package explain

import (
	"strings"
	"testing"
)

func TestRecordSummary(t *testing.T) {
	e := &RecordEvidence{Source: "memdiag record of process 7 over 30s", DurationSeconds: 30, OutstandingBytes: 3 << 30,
		Stacks: []RecordStack{{Label: "a", OutstandingBytes: 2 << 30}, {Label: "b", OutstandingBytes: 1 << 30}}}
	if got := e.Summary(); !strings.Contains(got, "3.0 GiB allocated and not freed over 30 s, from these 2 stacks: a (2.0 GiB); b (1.0 GiB)") {
		t.Errorf("summary %q", got)
	}
	e.Stacks, e.LostEvents = e.Stacks[:1], 5
	if got := e.Summary(); !strings.Contains(got, "from this stack: a (2.0 GiB) (5 events lost: a lower bound)") {
		t.Errorf("summary %q", got)
	}
}
