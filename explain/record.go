package explain

import (
	"fmt"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// RecordEvidence is what memdiag record saw of the process's allocations
// while explain recorded it (--record): the stacks holding what was
// allocated and not freed.
type RecordEvidence struct {
	Source           string            `json:"source"`
	DurationSeconds  float64           `json:"duration_seconds"`
	OutstandingBytes uint64            `json:"outstanding_bytes"`
	OutstandingCount uint64            `json:"outstanding_count"`
	LostEvents       uint64            `json:"lost_events"`
	Stacks           []RecordStack     `json:"stacks"`
	Findings         []finding.Finding `json:"findings"`
}

// RecordStack is one stack's allocations outstanding at the recording's end.
type RecordStack struct {
	Label            string `json:"label"`
	OutstandingBytes uint64 `json:"outstanding_bytes"`
	OutstandingCount uint64 `json:"outstanding_count"`
}

// Summary says, for the malloc-in-use row, how much of it the recording saw
// allocated and by whom: "1.7 GiB outstanding from these 3 stacks
// recorded over 30 s: …".
func (e *RecordEvidence) Summary() string {
	var top []string
	for i, s := range e.Stacks {
		if i == 3 || s.OutstandingBytes == 0 {
			break
		}
		top = append(top, fmt.Sprintf("%s (%s)", s.Label, humanize.Bytes(s.OutstandingBytes)))
	}
	text := fmt.Sprintf("%s: %s allocated and not freed over %.0f s", e.Source, humanize.Bytes(e.OutstandingBytes), e.DurationSeconds)
	switch len(top) {
	case 0:
	case 1:
		text += ", from this stack: " + top[0]
	default:
		text += fmt.Sprintf(", from these %d stacks: %s", len(top), strings.Join(top, "; "))
	}
	if e.LostEvents > 0 {
		text += fmt.Sprintf(" (%d events lost: a lower bound)", e.LostEvents)
	}
	return text
}
