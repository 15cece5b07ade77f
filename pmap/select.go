package pmap

import (
	"fmt"
	"sort"
)

// SortKey orders mappings for display.
type SortKey string

// The orders Select offers.
const (
	SortRSS          SortKey = "rss"
	SortPSS          SortKey = "pss"
	SortSize         SortKey = "size"
	SortSwap         SortKey = "swap"
	SortPrivateDirty SortKey = "private-dirty"
	SortAddress      SortKey = "address"
)

// SortKeys lists the accepted sort keys, for help and errors: a new slice
// each call, so no caller can change what another sees.
func SortKeys() []SortKey {
	return []SortKey{SortRSS, SortPSS, SortSize, SortSwap, SortPrivateDirty, SortAddress}
}

// ParseSortKey accepts a --sort value.
func ParseSortKey(s string) (SortKey, error) {
	for _, k := range SortKeys() {
		if string(k) == s {
			return k, nil
		}
	}
	if s == "addr" {
		return SortAddress, nil
	}
	return "", fmt.Errorf("unknown sort key %q: want one of %v", s, SortKeys())
}

// Selection says which mappings to show and in what order.
type Selection struct {
	Sort SortKey
	// Classes keeps only these classes; empty keeps all.
	Classes []Class
	// Limit keeps the first Limit mappings after sorting; 0 keeps all.
	Limit int
}

// Select returns pointers to the chosen mappings, sorted (largest first;
// address order for SortAddress, and to break ties), and how many matched
// the class filter before the limit.
func Select(ms []Mapping, sel Selection) (chosen []*Mapping, matched int) {
	want := make(map[Class]bool, len(sel.Classes))
	for _, c := range sel.Classes {
		want[c] = true
	}
	for i := range ms {
		if len(want) == 0 || want[ms[i].Class] {
			chosen = append(chosen, &ms[i])
		}
	}
	key := func(m *Mapping) uint64 {
		switch sel.Sort {
		case SortPSS:
			return m.Bytes(FieldPss)
		case SortSize:
			return m.Len()
		case SortSwap:
			return m.Bytes(FieldSwap)
		case SortPrivateDirty:
			return m.Bytes(FieldPrivateDirty)
		case SortAddress:
			return 0
		}
		return m.Bytes(FieldRss)
	}
	sort.SliceStable(chosen, func(i, j int) bool {
		if ki, kj := key(chosen[i]), key(chosen[j]); ki != kj {
			return ki > kj
		}
		return chosen[i].Start < chosen[j].Start
	})
	matched = len(chosen)
	if sel.Limit > 0 && len(chosen) > sel.Limit {
		chosen = chosen[:sel.Limit]
	}
	return chosen, matched
}
