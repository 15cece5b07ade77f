// Package finding is what memdiag's analyses conclude: a ranked, evidenced
// statement about a process's memory, with what to try about it.
package finding

import (
	"bytes"
	"encoding/json"
	"sort"
)

// Severity ranks a finding.
type Severity string

// Severities, most urgent first.
const (
	High   Severity = "high"   // most of the memory in question, or near a limit
	Medium Severity = "medium" // significant, worth acting on
	Info   Severity = "info"   // worth knowing; no action needed by itself
)

// MediumUntil is Medium, or High once share (of RSS, of a limit) reaches
// highAt: the grading most findings use.
func MediumUntil(share, highAt float64) Severity {
	if share >= highAt {
		return High
	}
	return Medium
}

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
// Its JSON form is the same in every memdiag document and snapshot.
type Finding struct {
	ID       string   `json:"id"`       // stable identifier, e.g. "arena-retention"
	Severity Severity `json:"severity"` // how urgent
	Summary  string   `json:"summary"`  // one sentence with the numbers
	Bytes    uint64   `json:"bytes"`    // the memory the finding is about
	Evidence []string `json:"evidence"` // where the figures come from
	Advice   []string `json:"advice"`   // what to try, in order, with the cost of each
}

// MarshalJSON writes absent evidence and advice as [], never null, so a
// consumer can iterate without a check. Text is not HTML-escaped here:
// that is the enclosing encoder's choice (memdiag's documents do not).
func (f Finding) MarshalJSON() ([]byte, error) {
	type plain Finding
	p := plain(f)
	if p.Evidence == nil {
		p.Evidence = []string{}
	}
	if p.Advice == nil {
		p.Advice = []string{}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
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
