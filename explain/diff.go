package explain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/humanize"
)

// Change is one figure in two snapshots.
type Change struct {
	Kind string `json:"kind"` // "rss", "category", "class", "arena", "pool", "buffer-pool"
	Name string `json:"name"`
	Old  uint64 `json:"old_bytes"`
	New  uint64 `json:"new_bytes"`
}

// Delta is New − Old.
func (c Change) Delta() int64 { return int64(c.New) - int64(c.Old) }

// Percent is the change relative to Old; +Inf-like 100 % when Old is 0.
func (c Change) Percent() float64 {
	if c.Old == 0 {
		if c.New == 0 {
			return 0
		}
		return 100
	}
	return 100 * float64(c.Delta()) / float64(c.Old)
}

// Diff compares two snapshots: RSS, every category, mapping class, arena,
// memory pool and buffer pool present in either.
func Diff(old, new *Snapshot) []Change {
	var cs []Change
	cs = append(cs, Change{Kind: "rss", Name: "rss", Old: old.RSSBytes, New: new.RSSBytes})
	pair := func(kind string, o, n map[string]uint64) {
		names := map[string]bool{}
		for k := range o {
			names[k] = true
		}
		for k := range n {
			names[k] = true
		}
		var sorted []string
		for k := range names {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			cs = append(cs, Change{Kind: kind, Name: k, Old: o[k], New: n[k]})
		}
	}
	cats := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		for _, e := range s.Entries {
			m[string(e.Category)] = e.Bytes
		}
		return m
	}
	classes := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		for _, c := range s.Inputs.Classes {
			m[c.Class] = c.RSSBytes
		}
		return m
	}
	arenas := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		if s.Inputs.Malloc != nil {
			for _, a := range s.Inputs.Malloc.Arenas {
				m[fmt.Sprintf("arena %d current", a.Nr)] = a.SystemCurrentBytes
				m[fmt.Sprintf("arena %d retained free", a.Nr)] = a.RetainedFreeBytes
			}
		}
		return m
	}
	pools := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		if j := s.Inputs.JVM; j != nil {
			m["heap used"] = j.HeapUsedBytes
			m["heap committed"] = j.HeapCommittedBytes
			for _, p := range j.Pools {
				m[p.Name+" used"] = p.UsedBytes
			}
		}
		return m
	}
	buffers := func(s *Snapshot) map[string]uint64 {
		m := map[string]uint64{}
		if j := s.Inputs.JVM; j != nil {
			for _, b := range j.BufferPools {
				m[b.Name] = b.UsedBytes
			}
		}
		return m
	}
	pair("category", cats(old), cats(new))
	pair("class", classes(old), classes(new))
	pair("arena", arenas(old), arenas(new))
	pair("pool", pools(old), pools(new))
	pair("buffer-pool", buffers(old), buffers(new))
	return cs
}

// Rule is a --fail-on threshold: NAME:+N% or NAME:+SIZE (growth), or with
// '-' for shrinkage. NAME is "rss", a category, or "KIND:NAME" of any change.
type Rule struct {
	Text    string
	Name    string
	Percent bool
	Amount  float64 // percent, or bytes
	Shrink  bool
}

// ParseRule reads "rss:+10%", "malloc-free-retained:+256MiB", "jvm-heap:+20%".
func ParseRule(s string) (Rule, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return Rule{}, fmt.Errorf("rule %q: want NAME:+AMOUNT, e.g. rss:+10%% or malloc-free-retained:+256MiB", s)
	}
	r := Rule{Text: s, Name: s[:i]}
	amt := s[i+1:]
	switch amt[0] {
	case '+':
	case '-':
		r.Shrink = true
	default:
		return Rule{}, fmt.Errorf("rule %q: the amount must start with + (growth) or - (shrinkage)", s)
	}
	amt = amt[1:]
	if strings.HasSuffix(amt, "%") {
		v, err := strconv.ParseFloat(strings.TrimSuffix(amt, "%"), 64)
		if err != nil || v < 0 {
			return Rule{}, fmt.Errorf("rule %q: %q is not a percentage", s, amt)
		}
		r.Percent, r.Amount = true, v
		return r, nil
	}
	v, err := humanize.ParseBytes(amt)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	r.Amount = float64(v)
	return r, nil
}

// Trips reports the changes the rule matches and exceeds.
func (r Rule) Trips(cs []Change) []Change {
	var out []Change
	for _, c := range cs {
		if r.Name != c.Name && r.Name != c.Kind+":"+c.Name {
			continue
		}
		d := float64(c.Delta())
		if r.Shrink {
			d = -d
		}
		if d <= 0 {
			continue
		}
		if r.Percent {
			pct := c.Percent()
			if r.Shrink {
				pct = -pct
			}
			if pct > r.Amount {
				out = append(out, c)
			}
		} else if d > r.Amount {
			out = append(out, c)
		}
	}
	return out
}
