package collect

import (
	"context"
	"fmt"
	"time"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/syscalltrace"
)

// recordFirst records the process's allocator for Request.Record, before
// the rest is gathered: smaps is then read as the recording leaves the
// process. nil without Record.
func (c *collection) recordFirst(ctx context.Context) (*record.Result, error) {
	r := c.r
	if r.Record <= 0 || r.PID == 0 {
		return nil, nil
	}
	res, err := record.Record(ctx, record.Options{PID: r.PID, Duration: r.Record})
	if err != nil {
		return nil, fmt.Errorf("--record: %w", err)
	}
	return res, nil
}

// recordInto puts a recording's evidence into the inputs: its stacks under
// malloc-in-use, its mappings never released under leaked-mappings (when
// no trace gave them).
func (c *collection) recordInto(res *record.Result) {
	in := c.in
	source := fmt.Sprintf("memdiag record of process %d over %s", res.PID, res.Duration.Round(time.Second))
	if res.Mappings != nil && in.Trace == nil {
		c.traceInto(source, res.Mappings, res.Outstanding)
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
