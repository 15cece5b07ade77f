package glibcheap

import (
	"errors"
	"fmt"
)

// ErrUnknownVersion means the process's glibc is one whose malloc layout
// memdiag does not know.
var ErrUnknownVersion = errors.New("glibc version not known")

// Version is a glibc release, 2.36 as {2, 36}.
type Version struct{ Major, Minor int }

func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

func (v Version) atLeast(minor int) bool { return v.Major > 2 || v.Major == 2 && v.Minor >= minor }

// The releases whose layouts are below, read from glibc's malloc/malloc.c
// and malloc/arena.c at each release tag (x86-64 and the other 64-bit
// targets: SIZE_SZ 8, MALLOC_ALIGNMENT 16).
var (
	oldestKnown = Version{2, 27} // malloc_state gained have_fastchunks
	newestKnown = Version{2, 43} // fastbins removed (from the tree of January 2026)
)

// layout is where the fields memdiag reads sit in one glibc release.
type layout struct {
	version Version

	// struct malloc_state
	fastbins                int // offset of fastbinsY[NFASTBINS]; -1 where there are none
	top                     int
	bins                    int // bins[NBINS*2-2]
	next                    int
	systemMem, maxSystemMem int
	stateSize               int

	// struct heap_info
	heapInfoSize int // also where a non-main arena's malloc_state starts in its first heap

	// struct malloc_par (mp_)
	mpTrimThreshold, mpMmapThreshold, mpArenaTest int
	mpHugePageSize                                int // hp_pagesize; -1 before 2.35
	mpNMmaps, mpNMmapsMax, mpMaxNMmaps            int // ints
	mpMmappedMem, mpMaxMmappedMem, mpSbrkBase     int
	mpTcacheBins, mpTcacheCount                   int
	mpSize                                        int

	// safeLinking: fast bin (and tcache) next pointers are stored as
	// ptr ^ (address of the field >> 12), from 2.32.
	safeLinking bool
	// infoCountsTop: malloc_info counts the top chunk among the "rest"
	// (it has since 2.31; mallinfo always has).
	infoCountsTop bool
}

const (
	sizeSz       = 8  // SIZE_SZ
	malignment   = 16 // MALLOC_ALIGNMENT
	minChunk     = 32 // MINSIZE
	nFastbins    = 10 // NFASTBINS on 64-bit
	nBins        = 128
	heapMaxSize  = 64 << 20 // HEAP_MAX_SIZE: 2 * DEFAULT_MMAP_THRESHOLD_MAX
	chunkFlags   = 0x7      // PREV_INUSE | IS_MMAPPED | NON_MAIN_ARENA
	nonMainArena = 0x4
)

// layoutFor returns the layout of glibc v, or ErrUnknownVersion.
func layoutFor(v Version) (layout, error) {
	if !v.atLeast(oldestKnown.Minor) || v.Major != 2 || v.Minor > newestKnown.Minor {
		return layout{}, fmt.Errorf("%w: glibc %s; memdiag reads the heaps of glibc %s to %s (use --gdb to ask the process's own malloc_info)", ErrUnknownVersion, v, oldestKnown, newestKnown)
	}
	l := layout{version: v, safeLinking: v.atLeast(32), infoCountsTop: v.atLeast(31)}
	// malloc_state: mutex (4), flags (4), then up to 2.42 have_fastchunks
	// (4, padded to 8) and fastbinsY[10]; top, last_remainder, bins[254],
	// binmap[4] (unsigned int), next, next_free, attached_threads,
	// system_mem, max_system_mem.
	if v.atLeast(43) {
		l.fastbins = -1
		l.top = 8
	} else {
		l.fastbins = 16
		l.top = l.fastbins + nFastbins*8
	}
	l.bins = l.top + 16
	binmap := l.bins + (nBins*2-2)*8
	l.next = binmap + 16
	l.systemMem = l.next + 24
	l.maxSystemMem = l.systemMem + 8
	l.stateSize = l.maxSystemMem + 8

	// heap_info: ar_ptr, prev, size, mprotect_size, and from 2.35
	// pagesize; padded so that sizeof + 2 * SIZE_SZ is 16-aligned.
	if v.atLeast(35) {
		l.heapInfoSize = 48
	} else {
		l.heapInfoSize = 32
	}

	// malloc_par: trim_threshold, top_pad, mmap_threshold, arena_test,
	// arena_max; from 2.35 thp_pagesize, hp_pagesize, hp_flags (int),
	// and from 2.43 an enum thp_mode before them; then the ints n_mmaps,
	// n_mmaps_max, max_n_mmaps, no_dyn_threshold; mmapped_mem,
	// max_mmapped_mem, sbrk_base; tcache_bins (tcache_small_bins from
	// 2.42), tcache_max_bytes, tcache_count, tcache_unsorted_limit.
	l.mpTrimThreshold, l.mpMmapThreshold, l.mpArenaTest = 0, 16, 24
	ints := 40
	l.mpHugePageSize = -1
	switch {
	case v.atLeast(43):
		l.mpHugePageSize = 56 // thp_mode (4, padded), thp_pagesize, hp_pagesize
		ints = 68             // after hp_flags at 64
	case v.atLeast(35):
		l.mpHugePageSize = 48
		ints = 60 // after hp_flags at 56
	}
	l.mpNMmaps, l.mpNMmapsMax, l.mpMaxNMmaps = ints, ints+4, ints+8
	l.mpMmappedMem = align8(ints + 16)
	l.mpMaxMmappedMem = l.mpMmappedMem + 8
	l.mpSbrkBase = l.mpMmappedMem + 16
	l.mpTcacheBins = l.mpSbrkBase + 8
	l.mpTcacheCount = l.mpSbrkBase + 24
	l.mpSize = l.mpSbrkBase + 40
	return l, nil
}

func align8(n int) int { return (n + 7) &^ 7 }

// binAt is the address glibc's bin_at(arena, i) names: the bin's two
// pointers, seen as a chunk whose fd and bk they are.
func (l layout) binAt(arena uint64, i int) uint64 {
	return arena + uint64(l.bins) + uint64(i-1)*16 - 16
}
