// Package finding is what memdiag's analyses conclude: a ranked, evidenced
// statement about a process's memory, with what to try about it.
package finding

import "sort"

// Severity ranks a finding.
type Severity string

// Severities, most urgent first.
const (
	High   Severity = "high"   // most of the memory in question, or near a limit
	Medium Severity = "medium" // significant, worth acting on
	Info   Severity = "info"   // worth knowing; no action needed by itself
)

func (s Severity) rank() int {
	switch s {
	case High:
		return 0
	case Medium:
		return 1
	}
	return 2
}

// Finding is one conclusion. Its figures come from Evidence, which names
// each input they were read from.
type Finding struct {
	ID       string   // stable identifier, e.g. "arena-retention"
	Severity Severity // how urgent
	Summary  string   // one sentence with the numbers
	Bytes    uint64   // the memory the finding is about
	Evidence []string // where the figures come from
	Advice   []string // what to try, in order, with the cost of each
}

// Sort orders findings by severity, then bytes (largest first), then ID.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := &fs[i], &fs[j]
		if a.Severity.rank() != b.Severity.rank() {
			return a.Severity.rank() < b.Severity.rank()
		}
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.ID < b.ID
	})
}
