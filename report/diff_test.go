package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/explain"
)

// TestDiffRatesAndWarnings: a diff gives rates per minute when the
// snapshots are a minute or more apart, names both processes, and warns
// when they are of different programs.
func TestDiffRatesAndWarnings(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	old := &explain.Snapshot{Taken: t0, Inputs: explain.Inputs{PID: 7, Command: "java"}}
	new := &explain.Snapshot{Taken: t0.Add(10 * time.Minute), Inputs: explain.Inputs{PID: 9, Command: "python3"}}
	v := &DiffView{Old: old, New: new, Changes: []explain.Change{
		{Kind: "rss", Name: "rss", Old: 100 << 20, New: 200 << 20},
		{Kind: "category", Name: "malloc-in-use", Old: 0, New: 10 << 20, Unmeasured: "old"},
	}}
	var b bytes.Buffer
	if err := WriteDiff(&b, FormatJSON, v, Style{}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Minutes  float64           `json:"minutes"`
		Warnings []string          `json:"warnings"`
		Old      struct{ PID int } `json:"old"`
		Changes  []struct {
			Name       string   `json:"name"`
			Rate       *float64 `json:"rate_bytes_per_minute"`
			Unmeasured string   `json:"unmeasured"`
		} `json:"changes"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Minutes != 10 || doc.Old.PID != 7 || len(doc.Warnings) != 1 || !strings.Contains(doc.Warnings[0], "different programs") {
		t.Errorf("minutes %v, old pid %d, warnings %q", doc.Minutes, doc.Old.PID, doc.Warnings)
	}
	if r := doc.Changes[0].Rate; r == nil || *r != float64(10<<20) {
		t.Errorf("rss rate %v, want 10 MiB per minute", r)
	}
	if doc.Changes[1].Rate != nil || doc.Changes[1].Unmeasured != "old" {
		t.Errorf("an unmeasured figure has a rate %v (unmeasured %q)", doc.Changes[1].Rate, doc.Changes[1].Unmeasured)
	}
	b.Reset()
	if err := WriteDiff(&b, FormatTable, v, Style{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"process 7 (java)", "process 9 (python3)", "+10.0 MiB", "not measured", "not comparable", "different programs"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestDiffHeapOutlook: a heap that grew between snapshots gets a rate and
// the time left before its maximum at that pace.
func TestDiffHeapOutlook(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	max := uint64(1 << 30)
	old := &explain.Snapshot{Taken: t0, Inputs: explain.Inputs{JVM: &explain.JVMEvidence{HeapUsedBytes: 512 << 20, HeapMaxBytes: &max}}}
	new := &explain.Snapshot{Taken: t0.Add(10 * time.Minute), Inputs: explain.Inputs{JVM: &explain.JVMEvidence{HeapUsedBytes: 768 << 20, HeapMaxBytes: &max}}}
	got := (&DiffView{Old: old, New: new}).heapOutlook()
	for _, want := range []string{"grows 25.6 MiB/min", "in about 10m0s"} {
		if !strings.Contains(got, want) {
			t.Errorf("outlook %q lacks %q", got, want)
		}
	}
	if (&DiffView{Old: new, New: old}).heapOutlook() != "" {
		t.Error("a heap that shrank has an outlook")
	}
}
