package allocator

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// tcmallocLines maps the labels of MallocExtension::GetStats's "MALLOC:"
// lines to the model.
var tcmallocParts = []struct {
	label, name, what string
}{
	{"Bytes in page heap freelist", PartPageHeapFree, "free pages in tcmalloc's page heap, not yet released to the OS (TCMALLOC_RELEASE_RATE paces that)"},
	{"Bytes in central cache freelist", PartCentralCacheFree, "free objects in the central caches, per size class"},
	{"Bytes in transfer cache freelist", PartTransferCacheFree, "free objects moving between thread and central caches"},
	{"Bytes in thread cache freelists", PartThreadCacheFree, "free objects cached by threads (TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES bounds them)"},
	{"Bytes in malloc metadata", PartMetadata, "tcmalloc's own structures"},
}

// parseTcmalloc reads gperftools' MallocExtension::GetStats text: the
// "MALLOC: <bytes> (<MiB> MiB) <what>" lines.
func parseTcmalloc(r io.Reader, name string) (*Stats, error) {
	s := &Stats{Allocator: Tcmalloc, Source: name}
	sc := bufio.NewScanner(io.LimitReader(r, maxStatsBytes))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		t := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(t, "MALLOC:")
		if !ok {
			continue
		}
		rest = strings.TrimLeft(strings.TrimSpace(rest), "+= ")
		numText, after, _ := strings.Cut(rest, " ")
		if numText == "" || numText[0] == '-' {
			continue // the "------------" rules
		}
		n, err := strconv.ParseUint(numText, 10, 64)
		if err != nil {
			continue // "MALLOC:" alone, or a count line we do not use
		}
		label := strings.TrimSpace(after)
		if i := strings.Index(label, ")"); i >= 0 && strings.HasPrefix(label, "(") {
			label = strings.TrimSpace(label[i+1:])
		}
		switch label {
		case "Bytes in use by application":
			s.InUseBytes = n
		case "Actual memory used (physical + swap)":
			s.ResidentBytes = n
		case "Bytes released to OS (aka unmapped)":
			s.ReleasedBytes = n
		case "Virtual address space used":
			s.MappedBytes = n
		case "Thread heaps in use":
			s.Settings = append(s.Settings, Setting{"thread_heaps", strconv.FormatUint(n, 10)})
		default:
			for _, p := range tcmallocParts {
				if p.label == label {
					s.Parts = append(s.Parts, Part{Name: p.name, Bytes: n, What: p.what, Resident: true})
				}
			}
		}
		seen[label] = true
	}
	if err := sc.Err(); err != nil {
		return nil, &ParseError{Name: name, Line: line + 1, Msg: "reading: " + err.Error(), Err: ErrMalformed}
	}
	if !seen["Bytes in use by application"] || !seen["Actual memory used (physical + swap)"] {
		return nil, &ParseError{Name: name, Msg: `no "MALLOC: … Bytes in use by application" and "Actual memory used" lines: not tcmalloc's statistics`, Err: ErrUnrecognized}
	}
	sort.SliceStable(s.Parts, func(i, j int) bool { return s.Parts[i].Bytes > s.Parts[j].Bytes })
	if sum := s.InUseBytes + s.RetainedBytes(); sum != s.ResidentBytes {
		s.Warnings = append(s.Warnings, fmt.Sprintf("in use + free lists + metadata = %d B, but tcmalloc says %d B actual: a part memdiag does not know?", sum, s.ResidentBytes))
	}
	return s, nil
}

func tcmallocFindings(s *Stats) []finding.Finding {
	kept := s.RetainedBytes()
	if kept < 16<<20 || kept < s.InUseBytes/4 {
		return nil
	}
	page, _ := s.Part(PartPageHeapFree)
	sev := finding.Medium
	if kept >= s.InUseBytes {
		sev = finding.High
	}
	var parts []string
	for _, p := range s.Parts {
		parts = append(parts, fmt.Sprintf("%s %d B", p.Name, p.Bytes))
	}
	return []finding.Finding{{
		ID:       "allocator-retention",
		Severity: sev,
		Summary: fmt.Sprintf("tcmalloc keeps %s beyond the %s the application holds (%.0f %% of its %s actual), %s of it free pages in its page heap",
			humanize.Bytes(kept), humanize.Bytes(s.InUseBytes), pct(kept, s.ResidentBytes), humanize.Bytes(s.ResidentBytes), humanize.Bytes(page.Bytes)),
		Bytes:    kept,
		Evidence: []string{fmt.Sprintf("%s: in use %d B; %s; actual %d B; released %d B", s.Source, s.InUseBytes, strings.Join(parts, ", "), s.ResidentBytes, s.ReleasedBytes)},
		Advice: []string{
			"Return the page heap's free pages now: memdiag trim --pid PID (calls MallocExtension_ReleaseFreeMemory; the process pauses while gdb is attached), or have the application call it after bursts.",
			"Release continuously: TCMALLOC_RELEASE_RATE=10 (default 1; higher returns pages sooner, at the cost of page faults when the memory is reused).",
			"Bound the caches: TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES (default 32 MiB) caps what threads keep.",
		},
	}}
}

// looksLikeTcmalloc reports whether b holds GetStats's lines.
func looksLikeTcmalloc(b []byte) bool {
	return bytes.Contains(b, []byte("MALLOC:")) && bytes.Contains(b, []byte("Bytes in use by application"))
}
