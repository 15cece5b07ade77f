package cmd

import (
	"context"
	"fmt"
	"time"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/syscalltrace"
)

// recordFirst records the process's allocator for --record, before the
// rest is gathered; nil without --record.
func recordFirst(ctx context.Context, o *GatherOptions) (*record.Result, error) {
	if o.Record <= 0 || o.PID == 0 {
		return nil, nil
	}
	res, err := record.Record(ctx, record.Options{PID: o.PID, Duration: o.Record})
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	return res, nil
}

// recordInto puts a recording's evidence into the inputs: its stacks under
// malloc-in-use, its mappings never released under leaked-mappings (when
// no --trace gave them).
func recordInto(in *explain.Inputs, res *record.Result, ms []pmap.Mapping) {
	source := fmt.Sprintf("memdiag record of process %d over %s", res.PID, res.Duration.Round(time.Second))
	if res.Mappings != nil && in.Trace == nil {
		traceInto(in, source, res.Mappings, res.Outstanding, ms)
	}
	e := &explain.RecordEvidence{Source: source, DurationSeconds: res.Duration.Seconds(), OutstandingBytes: res.OutstandingBytes,
		OutstandingCount: res.OutstandingCount, LostEvents: res.Counts.Lost(), Stacks: []explain.RecordStack{}}
	for i, s := range res.Stacks {
		if i == 10 || s.OutstandingBytes == 0 {
			break
		}
		label := "(no stack: " + s.Unwound + ")"
		if len(s.Frames) > 0 {
			label = syscalltrace.StackLabel(s.Frames)
		}
		e.Stacks = append(e.Stacks, explain.RecordStack{Label: label, OutstandingBytes: s.OutstandingBytes, OutstandingCount: s.OutstandingCount})
	}
	for _, f := range record.Findings(res) {
		if f.ID != "leaked-mappings" { // the trace evidence has its own, weighed by smaps
			e.Findings = append(e.Findings, f)
		}
	}
	in.Record = e
	in.Notes = append(in.Notes, "malloc-in-use: "+e.Summary())
}
