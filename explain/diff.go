package explain

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/humanize"
)

// Change is one figure in two snapshots.
type Change struct {
	Kind string `json:"kind"` // "rss", "category", "class", "arena", "pool", "buffer-pool"
	Name string `json:"name"`
	Old  uint64 `json:"old_bytes"`
	New  uint64 `json:"new_bytes"`
	// Unmeasured names the side(s) whose snapshot had no source for this
	// figure ("old", "new" or "both"): its 0 is not a measurement, and the
	// change is not comparable.
	Unmeasured string `json:"unmeasured,omitempty"`
}

// Comparable reports whether both snapshots measured the figure.
func (c Change) Comparable() bool { return c.Unmeasured == "" }

// Kinds are the kinds of rows Diff compares, for KIND:NAME rules.
var kinds = []string{"rss", "category", "class", "arena", "pool", "buffer-pool"}

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
	cs := []Change{{Kind: "rss", Name: "rss", Old: old.RSSBytes, New: new.RSSBytes}}
	for _, k := range []struct {
		kind    string
		figures func(*Snapshot) figures
	}{
		{"category", categoryFigures}, {"class", classFigures}, {"arena", arenaFigures},
		{"pool", poolFigures}, {"buffer-pool", bufferFigures},
	} {
		cs = append(cs, pair(k.kind, k.figures(old), k.figures(new))...)
	}
	return cs
}

// figures maps a row's name to its bytes; a name absent from a side whose
// source was given is 0 bytes, measured.
type figures struct {
	bytes      map[string]uint64
	unmeasured map[string]bool // names the side had no source for
	none       bool            // the side had no source for the kind at all
}

// pair is the changes of one kind, by name, with which side did not
// measure each.
func pair(kind string, o, n figures) []Change {
	names := map[string]bool{}
	for k := range o.bytes {
		names[k] = true
	}
	for k := range n.bytes {
		names[k] = true
	}
	var sorted []string
	for k := range names {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var cs []Change
	for _, k := range sorted {
		c := Change{Kind: kind, Name: k, Old: o.bytes[k], New: n.bytes[k]}
		oldMissing, newMissing := o.none || o.unmeasured[k], n.none || n.unmeasured[k]
		switch {
		case oldMissing && newMissing:
			c.Unmeasured = "both"
		case oldMissing:
			c.Unmeasured = "old"
		case newMissing:
			c.Unmeasured = "new"
		}
		cs = append(cs, c)
	}
	return cs
}

func categoryFigures(s *Snapshot) figures {
	f := figures{bytes: map[string]uint64{}, unmeasured: map[string]bool{}}
	// A category absent from a snapshot was not measured in it (those
	// before 2026-12 wrote it as 0 with no source).
	for _, c := range Categories() {
		f.unmeasured[string(c)] = true
	}
	for _, e := range s.Entries {
		f.bytes[string(e.Category)] = e.Bytes
		f.unmeasured[string(e.Category)] = e.Source == noSource
	}
	return f
}

func classFigures(s *Snapshot) figures {
	f := figures{bytes: map[string]uint64{}}
	for _, c := range s.Inputs.Classes {
		f.bytes[string(c.Class)] = c.RSSBytes
	}
	return f
}

func arenaFigures(s *Snapshot) figures {
	f := figures{bytes: map[string]uint64{}, none: s.Inputs.Malloc == nil}
	if s.Inputs.Malloc != nil {
		for _, a := range s.Inputs.Malloc.Arenas {
			f.bytes[fmt.Sprintf("arena %d current", a.Nr)] = a.SystemCurrentBytes
			f.bytes[fmt.Sprintf("arena %d retained free", a.Nr)] = a.RetainedFreeBytes
		}
	}
	return f
}

func poolFigures(s *Snapshot) figures {
	f := figures{bytes: map[string]uint64{}, none: s.Inputs.JVM == nil}
	if j := s.Inputs.JVM; j != nil {
		f.bytes["heap used"] = j.HeapUsedBytes
		f.bytes["heap committed"] = j.HeapCommittedBytes
		for _, p := range j.Pools {
			f.bytes[p.Name+" used"] = p.UsedBytes
		}
	}
	return f
}

func bufferFigures(s *Snapshot) figures {
	f := figures{bytes: map[string]uint64{}, none: s.Inputs.JVM == nil || len(s.Inputs.JVM.BufferPools) == 0}
	if j := s.Inputs.JVM; j != nil {
		for _, b := range j.BufferPools {
			f.bytes[b.Name] = b.UsedBytes
		}
	}
	return f
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

// ParseRules reads rules and checks that each names a row diff knows.
func ParseRules(texts []string) ([]Rule, error) {
	rules := make([]Rule, 0, len(texts))
	for _, t := range texts {
		r, err := ParseRule(t)
		if err == nil {
			err = r.CheckName()
		}
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
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
	if _, err := strconv.ParseFloat(amt, 64); err == nil {
		// rss:+10 reads as 10 % to some and 10 bytes to others; a gate
		// that means the one and checks the other passes or fails
		// everything.
		return Rule{}, fmt.Errorf("rule %q: %s has no unit: write %s%% for a percentage, or a size (%sB, %sMiB)", s, amt, s, s, s)
	}
	v, err := humanize.ParseBytes(amt)
	if err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s, err)
	}
	r.Amount = float64(v)
	return r, nil
}

// CheckName refuses a rule whose name cannot match any row: a plain name
// must be rss or a category, a KIND:NAME a known kind (and, for
// categories, a known category). A typo would otherwise pass every gate.
func (r Rule) CheckName() error {
	kind, name, qualified := strings.Cut(r.Name, ":")
	if !qualified {
		kind, name = "category", r.Name
		if name == "rss" {
			return nil
		}
	}
	if !slices.Contains(kinds, kind) {
		return fmt.Errorf("rule %q: no kind %q (kinds: %s)", r.Text, kind, strings.Join(kinds, ", "))
	}
	if kind == "category" && !slices.Contains(Categories(), Category(name)) {
		var names []string
		for _, c := range Categories() {
			names = append(names, string(c))
		}
		return fmt.Errorf("rule %q: no category %q (rss, %s; or KIND:NAME of another row)", r.Text, name, strings.Join(names, ", "))
	}
	return nil
}

// matches reports whether the rule names c: a plain name means rss or a
// category (a mapping class of the same name needs class:NAME).
func (r Rule) matches(c Change) bool {
	if r.Name == c.Kind+":"+c.Name {
		return true
	}
	return r.Name == c.Name && (c.Kind == "rss" || c.Kind == "category")
}

// Evaluation is what a rule found in a diff.
type Evaluation struct {
	// Matched is false when the rule names no row of either snapshot.
	Matched bool
	// Tripped are the comparable changes past the rule's amount.
	Tripped []Change
	// Unmeasured are the changes it names that a snapshot did not measure:
	// the rule can neither trip nor pass on them.
	Unmeasured []Change
}

// Evaluate applies the rule to the changes.
func (r Rule) Evaluate(cs []Change) Evaluation {
	var e Evaluation
	for _, c := range cs {
		if !r.matches(c) {
			continue
		}
		e.Matched = true
		if !c.Comparable() {
			e.Unmeasured = append(e.Unmeasured, c)
			continue
		}
		if r.exceeded(c) {
			e.Tripped = append(e.Tripped, c)
		}
	}
	return e
}

// Trips reports the comparable changes the rule matches and exceeds.
func (r Rule) Trips(cs []Change) []Change { return r.Evaluate(cs).Tripped }

func (r Rule) exceeded(c Change) bool {
	d := float64(c.Delta())
	if r.Shrink {
		d = -d
	}
	if d <= 0 {
		return false
	}
	if r.Percent {
		pct := c.Percent()
		if r.Shrink {
			pct = -pct
		}
		return pct > r.Amount
	}
	return d > r.Amount
}

// HeapOutlook says, for a JVM whose heap used grew between two snapshots a
// minute or more apart, how fast and when at that pace it reaches its
// maximum: the time left before heap-near-max becomes an OutOfMemoryError.
// It is "" otherwise.
func HeapOutlook(old, new *Snapshot) string {
	o, n := old.Inputs.JVM, new.Inputs.JVM
	minutes := MinutesApart(old, new)
	if o == nil || n == nil || n.HeapMaxBytes == nil || minutes == 0 || n.HeapUsedBytes <= o.HeapUsedBytes {
		return ""
	}
	rate := float64(n.HeapUsedBytes-o.HeapUsedBytes) / minutes
	left := float64(*n.HeapMaxBytes) - float64(n.HeapUsedBytes)
	if left <= 0 {
		return fmt.Sprintf("Java heap used grows %s/min and has reached its %s maximum", humanize.Bytes(uint64(rate)), humanize.Bytes(*n.HeapMaxBytes))
	}
	eta := time.Duration(left / rate * float64(time.Minute)).Round(time.Minute)
	return fmt.Sprintf("Java heap used grows %s/min (%s → %s): at that pace it reaches its %s maximum in about %s — a heap that a collection does not bring down is a leak",
		humanize.Bytes(uint64(rate)), humanize.Bytes(o.HeapUsedBytes), humanize.Bytes(n.HeapUsedBytes), humanize.Bytes(*n.HeapMaxBytes), eta)
}

// MinutesApart is how many minutes separate two snapshots, 0 when it is
// under a minute or a time is unknown: too short for a rate.
func MinutesApart(old, new *Snapshot) float64 {
	if old.Taken.IsZero() || new.Taken.IsZero() {
		return 0
	}
	if m := new.Taken.Sub(old.Taken).Minutes(); m >= 1 {
		return m
	}
	return 0
}
