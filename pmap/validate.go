package pmap

import "fmt"

// Validate checks what must hold in any smaps the kernel writes, and
// returns one warning per violation (capped, with a count of the rest). An
// edited or corrupted capture shows here instead of as a silently wrong sum.
func Validate(ms []Mapping) []string {
	const maxWarnings = 10
	var warns []string
	extra := 0
	warn := func(format string, args ...any) {
		if len(warns) < maxWarnings {
			warns = append(warns, fmt.Sprintf(format, args...))
		} else {
			extra++
		}
	}
	var prevEnd uint64
	for i := range ms {
		m := &ms[i]
		if m.Start >= m.End {
			warn("mapping %#x-%#x: start is not below end", m.Start, m.End)
		}
		if i > 0 && m.Start < prevEnd {
			warn("mapping %#x-%#x overlaps or precedes the previous one (ends %#x)", m.Start, m.End, prevEnd)
		}
		prevEnd = m.End
		if size, ok := m.Value(FieldSize); ok && m.End > m.Start && size != m.Len() {
			warn("mapping %#x-%#x: Size %d kB is not end − start (%d kB)", m.Start, m.End, size>>10, m.Len()>>10)
		}
		rss, hasRSS := m.Value(FieldRss)
		if hasRSS && m.End > m.Start && rss > m.Len() {
			warn("mapping %#x-%#x: Rss %d kB exceeds its size %d kB", m.Start, m.End, rss>>10, m.Len()>>10)
		}
		if pss, ok := m.Value(FieldPss); ok && hasRSS && pss > rss {
			warn("mapping %#x-%#x: Pss %d kB exceeds Rss %d kB", m.Start, m.End, pss>>10, rss>>10)
		}
		if hasRSS {
			parts := m.Bytes(FieldSharedClean) + m.Bytes(FieldSharedDirty) + m.Bytes(FieldPrivateClean) + m.Bytes(FieldPrivateDirty)
			if m.Has(FieldPrivateDirty) && parts != rss {
				warn("mapping %#x-%#x: Shared+Private parts %d kB do not add up to Rss %d kB", m.Start, m.End, parts>>10, rss>>10)
			}
		}
	}
	if extra > 0 {
		warns = append(warns, fmt.Sprintf("%d more inconsistencies not listed", extra))
	}
	return warns
}
