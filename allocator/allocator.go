// Package allocator explains the memory a process's malloc holds, whichever
// malloc it is: glibc's (read by package mallocinfo), jemalloc's
// (malloc_stats_print, JSON or text, or live through mallctl) and
// tcmalloc's (gperftools' MallocExtension::GetStats). Each is brought to
// one model — what the application holds, and what the allocator keeps
// beside it, part by part — that `memdiag explain` weighs against RSS.
//
// It also knows which allocator a live process uses, and how to make each
// give its free memory back (Trim).
package allocator

import (
	"errors"
	"path"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/parseerr"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
)

// Kind names an allocator.
type Kind string

// The allocators memdiag knows.
const (
	Glibc    Kind = "glibc"
	Jemalloc Kind = "jemalloc"
	Tcmalloc Kind = "tcmalloc"
	Unknown  Kind = ""
)

// Sentinel errors, for errors.Is.
var (
	// ErrMalformed means statistics that could not be read.
	ErrMalformed = errors.New("malformed allocator statistics")
	// ErrUnrecognized means input in none of the formats known.
	ErrUnrecognized = errors.New("not allocator statistics memdiag knows")
)

// ParseError locates a failure: the input's name, its line, what was
// wrong, and the sentinel it wraps.
type ParseError = parseerr.Error

// The names of the parts: stable, for they are JSON values and what
// other packages look parts up by.
const (
	PartDirtyPages        = "dirty_pages"    // jemalloc
	PartMuzzyPages        = "muzzy_pages"    // jemalloc
	PartFragmentation     = "fragmentation"  // jemalloc
	PartMetadata          = "metadata"       // jemalloc, tcmalloc
	PartPageHeapFree      = "page_heap_free" // tcmalloc
	PartCentralCacheFree  = "central_cache_free"
	PartTransferCacheFree = "transfer_cache_free"
	PartThreadCacheFree   = "thread_cache_free"
)

// Part is memory the allocator keeps beside what the application holds.
type Part struct {
	// Name is one of the Part… constants.
	Name string
	// Bytes is how much, as the allocator counts it.
	Bytes uint64
	// What says what it is and why it is kept, for a person.
	What string
	// Resident is false for memory the allocator counts but that is not
	// in RAM (muzzy pages may be, or not: see What).
	Resident bool
}

// Stats is one allocator's account of its memory at an instant.
type Stats struct {
	Allocator Kind
	Version   string // as the allocator printed it, "" when unknown
	Source    string // the file, or "process N (via gdb)"
	// InUseBytes is what the application holds (jemalloc stats.allocated,
	// tcmalloc "Bytes in use by application").
	InUseBytes uint64
	// Parts are what the allocator keeps besides, largest first.
	Parts []Part
	// ResidentBytes is the allocator's own figure of its resident memory
	// (jemalloc stats.resident, tcmalloc "Actual memory used"), 0 when it
	// gives none.
	ResidentBytes uint64
	// MappedBytes is what it has mapped, released or not.
	MappedBytes uint64
	// ReleasedBytes were given back to the OS but stay mapped (tcmalloc's
	// unmapped page heap, jemalloc's retained).
	ReleasedBytes uint64
	// Settings are the options that decide what it keeps:
	// dirty_decay_ms, narenas, background_thread, …
	Settings []Setting
	// Arenas counts jemalloc's arenas (0 when not known).
	Arenas   int
	Warnings []string
}

// Setting is one option of the allocator, as it reported it.
type Setting struct {
	Name, Value string
}

// RetainedBytes is what the allocator keeps resident beyond what the
// application holds: the sum of the resident parts.
func (s *Stats) RetainedBytes() uint64 {
	var n uint64
	for _, p := range s.Parts {
		if p.Resident {
			n += p.Bytes
		}
	}
	return n
}

// Part returns the part named name.
func (s *Stats) Part(name string) (Part, bool) {
	for _, p := range s.Parts {
		if p.Name == name {
			return p, true
		}
	}
	return Part{}, false
}

// TrimmableBytes is the free memory a trim can return, by the allocator's
// figures: jemalloc's dirty and muzzy pages, tcmalloc's page heap.
func (s *Stats) TrimmableBytes() uint64 {
	var n uint64
	for _, name := range []string{PartDirtyPages, PartMuzzyPages, PartPageHeapFree} {
		if p, ok := s.Part(name); ok {
			n += p.Bytes
		}
	}
	return n
}

// Classes are the pmap classes of the mappings that hold what allocator k
// keeps: glibc's arena heaps and the brk heap; jemalloc's and tcmalloc's
// plain anonymous mappings (they map their memory themselves). explain caps
// glibc's retained free memory by the Rss of its classes; jemalloc's and
// tcmalloc's is what the anonymous memory left holds.
func (k Kind) Classes() []pmap.Class {
	switch k {
	case Jemalloc, Tcmalloc:
		return []pmap.Class{pmap.ClassAnon}
	}
	return []pmap.Class{pmap.ClassHeap, pmap.ClassGlibcArena}
}

// Trimmable names, for a person, what TrimmableBytes counts for k.
func (k Kind) Trimmable() string {
	switch k {
	case Jemalloc:
		return "dirty + muzzy pages"
	case Tcmalloc:
		return "page heap free"
	}
	return ""
}

// Setting returns the value of setting name.
func (s *Stats) Setting(name string) (string, bool) {
	for _, st := range s.Settings {
		if st.Name == name {
			return st.Value, true
		}
	}
	return "", false
}

// Detection is which allocator a process uses, and the library it is in.
type Detection struct {
	Kind Kind
	// Library is the path of the allocator's shared library as mapped;
	// for glibc, its libc.so.6.
	Library string
}

// Detect says which allocator process pid uses, from the libraries it has
// mapped: libjemalloc.so*, libtcmalloc*.so* (an LD_PRELOAD or a link),
// else glibc's libc.so.6. A statically linked jemalloc or tcmalloc is not
// seen: it is reported as Unknown when there is no libc either, or as
// glibc.
func Detect(fsys proc.FS, pid int) (Detection, error) {
	var d Detection
	// A zombie maps nothing: it would be called a static binary.
	if err := gdbinject.CheckAlive(fsys, pid); err != nil {
		return d, err
	}
	_, err := fsys.FindMapping(pid, func(p string) bool {
		switch k := OfLibrary(p); {
		case k == Jemalloc || k == Tcmalloc:
			d = Detection{k, p}
			return true
		case k == Glibc && d.Kind == Unknown:
			d = Detection{Glibc, p}
		}
		return false
	})
	// proc's maps errors name the process and the privilege needed.
	return d, err
}

// OfLibrary says which allocator a mapped library is: libjemalloc.so*,
// libtcmalloc*.so*, glibc's libc.so.6, or Unknown. A process that maps
// jemalloc or tcmalloc uses it, whatever else it maps.
func OfLibrary(p string) Kind {
	switch base := path.Base(p); {
	case strings.HasPrefix(base, "libjemalloc.so"):
		return Jemalloc
	case strings.HasPrefix(base, "libtcmalloc") && strings.Contains(base, ".so"):
		return Tcmalloc
	case base == "libc.so.6":
		return Glibc
	}
	return Unknown
}

// Findings draws conclusions from s: what keeps the memory, and what to
// try, with the cost of each.
func Findings(s *Stats) []finding.Finding {
	switch s.Allocator {
	case Jemalloc:
		return jemallocFindings(s)
	case Tcmalloc:
		return tcmallocFindings(s)
	}
	return nil
}

func pct(part, whole uint64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}
