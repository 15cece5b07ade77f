package mallocinfo

import (
	"fmt"
	"sort"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
)

// ArenaStats is one arena explained.
type ArenaStats struct {
	Nr   int
	Main bool // arena 0: the brk heap
	// SystemCurrentBytes is what the arena holds from the system now.
	SystemCurrentBytes uint64
	SystemMaxBytes     uint64
	// FreeFastBytes and FreeRestBytes are free chunks in fast bins and in
	// the other bins (unsorted, small, large) plus the top chunk.
	FreeFastBytes uint64
	FreeRestBytes uint64
	// UnsortedBytes is the unsorted bin, part of FreeRestBytes.
	UnsortedBytes uint64
	// TopBytes is the top chunk: free − Σ bins − unsorted. It is the only
	// free memory trimming returns to the system on its own.
	TopBytes uint64
	// RetainedFreeBytes is free − top: free chunks below live ones, which
	// automatic trimming never returns (malloc_trim(0) can, page by page).
	RetainedFreeBytes uint64
	// InUseBytes is current − free. It still counts chunks cached in
	// threads' tcaches, which malloc_info does not list.
	InUseBytes uint64
	Subheaps   uint64 // heaps of a non-main arena
	Bins       []Bin  // the size-class histogram
}

// FreeBytes is all free memory of the arena: fast + rest.
func (a *ArenaStats) FreeBytes() uint64 { return a.FreeFastBytes + a.FreeRestBytes }

// FreeShare is free/current, 0 for an empty arena.
func (a *ArenaStats) FreeShare() float64 {
	if a.SystemCurrentBytes == 0 {
		return 0
	}
	return float64(a.FreeBytes()) / float64(a.SystemCurrentBytes)
}

// Totals sums the arenas, with the process-wide mmapped chunks.
type Totals struct {
	Arenas             int
	SystemCurrentBytes uint64
	SystemMaxBytes     uint64
	FreeBytes          uint64
	FreeFastBytes      uint64
	TopBytes           uint64
	RetainedFreeBytes  uint64
	InUseBytes         uint64
	// MmapBytes and MmapCount are chunks above the mmap threshold, outside
	// every arena.
	MmapBytes uint64
	MmapCount uint64
}

// Snapshot is one malloc_info document explained.
type Snapshot struct {
	Line   int    // where the document starts in its input
	Label  string // the log line before it
	Arenas []ArenaStats
	Totals Totals
	// Warnings hold what did not add up (a negative top chunk, totals that
	// disagree with the arenas) and what the parser tolerated.
	Warnings []string
}

// heapMaxSize is glibc's HEAP_MAX_SIZE on 64-bit: 2 × the default
// mmap threshold maximum, 64 MiB. No heap of a non-main arena, and so no
// top chunk, is larger.
const heapMaxSize = 64 << 20

// Analyze explains one document. Arenas are listed in malloc_info's order.
func Analyze(info *Info) *Snapshot {
	s := &Snapshot{Line: info.Line, Label: info.Label, Warnings: append([]string(nil), info.Warnings...),
		Arenas: make([]ArenaStats, 0, len(info.Arenas))}
	for i := range info.Arenas {
		a := &info.Arenas[i]
		st := ArenaStats{
			Nr:                 a.Nr,
			Main:               a.Nr == 0,
			SystemCurrentBytes: a.SystemCurrent,
			SystemMaxBytes:     a.SystemMax,
			FreeFastBytes:      a.Fast.Size,
			FreeRestBytes:      a.Rest.Size - min(binnedChunks(a.Rest), a.Rest.Size),
			Subheaps:           a.Subheaps,
			Bins:               a.Bins,
		}
		var binned uint64
		for _, b := range a.Bins {
			binned += b.Bytes()
		}
		if a.Unsorted != nil {
			st.UnsortedBytes = a.Unsorted.Bytes()
			binned += st.UnsortedBytes
		}
		free := st.FreeBytes()
		if binned > free {
			s.Warnings = append(s.Warnings, fmt.Sprintf("arena %d: bins hold %d B but free is %d B: top chunk taken as 0", a.Nr, binned, free))
			binned = free
		}
		st.TopBytes = free - binned
		// A non-main arena's top chunk lies in its newest heap, which
		// glibc never grows past HEAP_MAX_SIZE: a larger "top" means the
		// histogram does not cover the free chunks (elided, as published
		// documents often are, or cut).
		if !st.Main && st.TopBytes > heapMaxSize {
			what := "does not cover"
			if len(a.Bins) == 0 && a.Unsorted == nil {
				what = "is missing, so it cannot say where"
			}
			s.Warnings = append(s.Warnings, fmt.Sprintf("arena %d: the size histogram %s its %d B free in %d chunks; its top chunk cannot exceed glibc's %d MiB heap size, so at least %d B of it is retained free (top taken as %d MiB at most)",
				a.Nr, what, free, a.Rest.Count+a.Fast.Count, heapMaxSize>>20, free-heapMaxSize, heapMaxSize>>20))
			st.TopBytes = heapMaxSize
		}
		st.RetainedFreeBytes = free - st.TopBytes
		if free > a.SystemCurrent {
			s.Warnings = append(s.Warnings, fmt.Sprintf("arena %d: free %d B exceeds system current %d B: in use taken as 0", a.Nr, free, a.SystemCurrent))
		} else {
			st.InUseBytes = a.SystemCurrent - free
		}
		s.Arenas = append(s.Arenas, st)

		t := &s.Totals
		t.Arenas++
		t.SystemCurrentBytes += st.SystemCurrentBytes
		t.SystemMaxBytes += st.SystemMaxBytes
		t.FreeBytes += free
		t.FreeFastBytes += st.FreeFastBytes
		t.TopBytes += st.TopBytes
		t.RetainedFreeBytes += st.RetainedFreeBytes
		t.InUseBytes += st.InUseBytes
	}
	s.Totals.MmapBytes, s.Totals.MmapCount = info.Mmap.Size, info.Mmap.Count
	// malloc_info locks one arena at a time, so a busy process's totals can
	// differ from the sum of its arenas; say so rather than pick one.
	if info.SystemCurrent != s.Totals.SystemCurrentBytes {
		s.Warnings = append(s.Warnings, fmt.Sprintf("document total system current %d B ≠ Σ arenas %d B (the process allocated while malloc_info ran?)", info.SystemCurrent, s.Totals.SystemCurrentBytes))
	}
	if tf := info.Fast.Size + info.Rest.Size - min(info.Rest.Count-min(info.Rest.Count, uint64(len(info.Arenas))), info.Rest.Size); tf != s.Totals.FreeBytes {
		s.Warnings = append(s.Warnings, fmt.Sprintf("document total free %d B ≠ Σ arenas %d B", tf, s.Totals.FreeBytes))
	}
	return s
}

// binnedChunks is how many chunks a <total type="rest"> counts in bins:
// all but the top chunk, which glibc counts first.
func binnedChunks(rest Total) uint64 {
	if rest.Count == 0 {
		return 0
	}
	return rest.Count - 1
}

// ByRetained returns the arenas ordered by retained free bytes, largest
// first (then by number).
func (s *Snapshot) ByRetained() []*ArenaStats {
	out := make([]*ArenaStats, len(s.Arenas))
	for i := range s.Arenas {
		out[i] = &s.Arenas[i]
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].RetainedFreeBytes != out[j].RetainedFreeBytes {
			return out[i].RetainedFreeBytes > out[j].RetainedFreeBytes
		}
		return out[i].Nr < out[j].Nr
	})
	return out
}

// Thresholds tune the findings. DefaultThresholds documents the defaults.
type Thresholds struct {
	// RetainedShare: arena-retention fires when retained free is at least
	// this share of all arenas' current size…
	RetainedShare float64
	// …and at least this many bytes.
	RetainedMinBytes uint64
	// MostlyFreeShare names an arena "mostly free" at this free share.
	MostlyFreeShare float64
	// Cores of the host the process runs on; glibc's arena limit is 8 ×
	// cores on 64-bit. 0 skips the arena-count finding.
	Cores int
	// ArenaMax is MALLOC_ARENA_MAX when known (0: not set).
	ArenaMax int
}

// DefaultThresholds: retention worth a finding is a quarter of the arenas
// and at least 16 MiB; an arena 90 % free is named as mostly free.
func DefaultThresholds(cores int) Thresholds {
	return Thresholds{RetainedShare: 0.25, RetainedMinBytes: 16 << 20, MostlyFreeShare: 0.90, Cores: cores}
}

// Findings draws conclusions from one snapshot.
func Findings(s *Snapshot, t Thresholds, source string) []finding.Finding {
	var fs []finding.Finding
	if f, ok := retentionFinding(s, t, source); ok {
		fs = append(fs, f)
	}
	if f, ok := arenaCountFinding(s, t, source); ok {
		fs = append(fs, f)
	}
	finding.Sort(fs)
	return fs
}

func retentionFinding(s *Snapshot, t Thresholds, source string) (finding.Finding, bool) {
	tot := &s.Totals
	if tot.SystemCurrentBytes == 0 {
		return finding.Finding{}, false
	}
	share := float64(tot.RetainedFreeBytes) / float64(tot.SystemCurrentBytes)
	if share < t.RetainedShare || tot.RetainedFreeBytes < t.RetainedMinBytes {
		return finding.Finding{}, false
	}
	var mostlyFree []string
	var mostlyFreeBytes uint64
	holders := 0
	for _, a := range s.ByRetained() {
		if a.RetainedFreeBytes == 0 {
			break
		}
		holders++
		if a.FreeShare() >= t.MostlyFreeShare && a.SystemCurrentBytes >= t.RetainedMinBytes/4 {
			mostlyFree = append(mostlyFree, fmt.Sprint(a.Nr))
			mostlyFreeBytes += a.RetainedFreeBytes
		}
	}
	summary := fmt.Sprintf("%s (%.0f %% of the %s glibc arenas hold) is free memory retained in the free lists of %d %s",
		humanize.Bytes(tot.RetainedFreeBytes), 100*share, humanize.Bytes(tot.SystemCurrentBytes), holders, humanize.Plural(holders, "arena", "arenas"))
	if len(mostlyFree) > 0 {
		summary += fmt.Sprintf("; %s %s ≥%.0f %% free (%s)", humanize.Plural(len(mostlyFree), "arena", "arenas"), humanize.List(mostlyFree, "and"), 100*t.MostlyFreeShare, humanize.Bytes(mostlyFreeBytes))
	}
	ev := []string{
		fmt.Sprintf("%s: Σ system current %d B, Σ free %d B (fast %d B), Σ top chunks %d B → retained free = free − top = %d B",
			source, tot.SystemCurrentBytes, tot.FreeBytes, tot.FreeFastBytes, tot.TopBytes, tot.RetainedFreeBytes),
	}
	for i, a := range s.ByRetained() {
		if i == 5 || a.RetainedFreeBytes == 0 {
			break
		}
		ev = append(ev, fmt.Sprintf("arena %d: current %d B, free %d B (%.1f %%), top %d B, retained %d B",
			a.Nr, a.SystemCurrentBytes, a.FreeBytes(), 100*a.FreeShare(), a.TopBytes, a.RetainedFreeBytes))
	}
	sev := finding.Medium
	if share >= 0.5 {
		sev = finding.High
	}
	return finding.Finding{
		ID:       "arena-retention",
		Severity: sev,
		Summary:  summary,
		Bytes:    tot.RetainedFreeBytes,
		Evidence: ev,
		Advice:   retentionAdvice,
	}, true
}

var retentionAdvice = []string{
	"malloc_trim(0) returns free pages inside every arena to the system (madvise); for a JVM: jcmd PID System.trim_native_heap (JDK 18+, and backports), or -XX:TrimNativeHeapInterval=ms on newer JDKs. Cost: a pause while it walks the arenas; trimmed pages fault back in when reused. It also proves the diagnosis: RSS drops by about the retained bytes.",
	"MALLOC_ARENA_MAX=2 (or 4) in the environment: fewer arenas, so memory freed by one thread is reused by others instead of stranded. Cost: more lock contention in malloc-heavy threads; measure throughput.",
	"GLIBC_TUNABLES=glibc.malloc.trim_threshold=… and glibc.malloc.mmap_threshold=…: a lower mmap threshold keeps large blocks out of the arenas, where they cannot strand. Cost: more mmap/munmap system calls; trim_threshold alone only trims the top of a heap, not holes below live blocks.",
	"jemalloc or tcmalloc via LD_PRELOAD (e.g. LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2): allocators that return freed memory in the background; the usual cure when freed memory strands in glibc arenas. Cost: a different allocator in production — test for regressions and watch its own statistics.",
}

func arenaCountFinding(s *Snapshot, t Thresholds, source string) (finding.Finding, bool) {
	limit := 8 * t.Cores
	limitWhy := fmt.Sprintf("8 × %d cores", t.Cores)
	if t.ArenaMax > 0 {
		limit, limitWhy = t.ArenaMax, "MALLOC_ARENA_MAX"
	}
	n := s.Totals.Arenas
	if limit <= 0 && n >= 16 {
		// A saved document from a host whose cores are not known: the
		// count is a fact, the limit is not.
		return finding.Finding{ID: "arena-count", Severity: finding.Info,
			Summary:  fmt.Sprintf("%d arenas; whether that is glibc's limit (8 × the cores of the host the document came from) is unknown: give --cores", n),
			Evidence: []string{fmt.Sprintf("%s: %d <heap> elements", source, n)},
			Advice:   []string{"memdiag mallocinfo FILE --cores N (the cores of the process's host), or capture live with --pid, which knows them."}}, true
	}
	if limit <= 0 || n < 8 || float64(n) < 0.75*float64(limit) {
		return finding.Finding{}, false
	}
	var nonMain, stranded uint64
	for _, a := range s.Arenas {
		if !a.Main {
			nonMain += a.SystemCurrentBytes
			stranded += a.RetainedFreeBytes
		}
	}
	sev := finding.Info
	summary := fmt.Sprintf("%d arenas, %.0f %% of glibc's limit of %d (%s): many threads allocate, each arena strands its own free memory", n, 100*float64(n)/float64(limit), limit, limitWhy)
	if n >= limit {
		sev = finding.Medium
	}
	if n > limit {
		summary = fmt.Sprintf("%d arenas, more than glibc's limit of %d (%s): the limit was raised (MALLOC_ARENA_MAX or glibc.malloc.arena_max); each arena strands its own free memory", n, limit, limitWhy)
	}
	// Arenas that are mostly in use strand little: fewer of them would
	// hold the same live memory, so capping them is not the lead.
	if nonMain > 0 && float64(stranded) < 0.25*float64(nonMain) {
		sev = finding.Info
		summary += fmt.Sprintf("; but they are %.0f %% in use, so capping them would return little", 100*(1-float64(stranded)/float64(nonMain)))
	}
	return finding.Finding{
		ID:       "arena-count",
		Severity: sev,
		Summary:  summary,
		Bytes:    stranded,
		Evidence: []string{fmt.Sprintf("%s: %d <heap> elements; non-main arenas hold %d B, %d B of it retained free", source, n, nonMain, stranded)},
		Advice: []string{
			"MALLOC_ARENA_MAX=2…4 caps the arenas. Cost: lock contention between threads that allocate at once.",
			"Reuse threads (one shared pool) instead of creating pools per task: each new thread may get a new arena, which then keeps what it freed.",
		},
	}, true
}
