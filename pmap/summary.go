package pmap

import "sort"

// Sums adds up the summable counters over a set of mappings. A counter is
// present in Sums when at least one mapping had it.
type Sums struct {
	Mappings int
	// SizeBytes is the address space covered, Σ (End − Start).
	SizeBytes uint64
	values    [numFields]uint64
	present   uint32
}

// Add counts one mapping.
func (s *Sums) Add(m *Mapping) {
	s.Mappings++
	s.SizeBytes += m.Len()
	s.present |= m.present & summableMask
	m.each(func(f Field, v uint64) { s.values[f] += v })
}

// summableMask has the bits of the fields Sums adds up.
var summableMask = func() uint32 {
	var mask uint32
	for f := Field(0); f < numFields; f++ {
		if f.Summable() {
			mask |= 1 << f
		}
	}
	return mask
}()

// Value returns the sum of counter f and whether any mapping had it.
func (s *Sums) Value(f Field) (uint64, bool) {
	if f >= numFields || s.present&(1<<f) == 0 {
		return 0, false
	}
	return s.values[f], true
}

// Bytes returns the sum of counter f, 0 when no mapping had it.
func (s *Sums) Bytes(f Field) uint64 { return s.values[f] }

// ClassSums is the sums of one class.
type ClassSums struct {
	Class Class
	Sums
}

// Summary is an address space summed overall and per class.
type Summary struct {
	Totals Sums
	// Classes is ordered by RSS, largest first, then by class name.
	Classes []ClassSums
}

// Summarize sums classified mappings per class.
func Summarize(ms []Mapping) Summary {
	var s Summary
	index := make(map[Class]int)
	for i := range ms {
		m := &ms[i]
		s.Totals.Add(m)
		j, ok := index[m.Class]
		if !ok {
			j = len(s.Classes)
			index[m.Class] = j
			s.Classes = append(s.Classes, ClassSums{Class: m.Class})
		}
		s.Classes[j].Add(m)
	}
	sort.Slice(s.Classes, func(i, j int) bool {
		a, b := &s.Classes[i], &s.Classes[j]
		if ra, rb := a.Bytes(FieldRss), b.Bytes(FieldRss); ra != rb {
			return ra > rb
		}
		if a.SizeBytes != b.SizeBytes {
			return a.SizeBytes > b.SizeBytes
		}
		return a.Class < b.Class
	})
	return s
}

// AnonByClass is the anonymous memory of classified mappings by class: glibc
// arenas, the brk heap, other anonymous memory (large malloc chunks,
// runtimes' heaps), stacks — the main thread's counted with the others'.
func AnonByClass(ms []Mapping) map[Class]uint64 {
	by := map[Class]uint64{}
	for _, c := range Summarize(ms).Classes {
		class := c.Class
		if class == ClassStack {
			class = ClassThreadStack
		}
		if n := c.Bytes(FieldAnonymous); n > 0 {
			by[class] += n
		}
	}
	return by
}
