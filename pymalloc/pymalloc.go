// Package pymalloc reads CPython's small-object allocator from a live
// process's memory: the pools of its arenas, each of which begins with a
// header that says its block size and how many of its blocks are in use.
// Nothing runs in the process and it is not stopped; every header is
// checked against the invariants CPython keeps (Objects/obmalloc.c), so a
// page that merely looks like one is not counted.
//
// pymalloc serves every request of up to 512 bytes — most Python objects —
// from pools (16 KiB since CPython 3.10 on 64-bit, 4 KiB before) carved
// from arenas it mmaps (1 MiB, 256 KiB before). An arena goes back to the
// system only when every pool in it is empty, so a heap whose objects died
// unevenly keeps its arenas: the free blocks and empty pools counted here.
package pymalloc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
)

// Errors of ReadProcess, for errors.Is.
var (
	// ErrNotCPython: no CPython interpreter (python3.X or libpython3.X) is
	// mapped.
	ErrNotCPython = errors.New("no CPython interpreter is mapped")
	// ErrUnsupported: a CPython whose small-object allocator is not
	// pymalloc's pools (the free-threaded build uses mimalloc), or older
	// than 3.8, whose pools this reader does not know.
	ErrUnsupported = errors.New("CPython build without pymalloc pools this reader knows")
)

// The pool header on 64-bit (struct pool_header): ref.count (uint, in an
// 8-byte union), freeblock, nextpool, prevpool (pointers), arenaindex,
// szidx, nextoffset, maxnextoffset (uint). POOL_OVERHEAD is its size
// rounded up to ALIGNMENT.
const (
	headerBytes    = 48
	alignment      = 16  // ALIGNMENT since CPython 3.8
	smallThreshold = 512 // SMALL_REQUEST_THRESHOLD
	sizeClasses    = smallThreshold / alignment
)

// Stats is what the pools found say, in bytes.
type Stats struct {
	// Version is the CPython version the interpreter's file name gives.
	Version string `json:"version"`
	// PoolBytes is the pool size of that version.
	PoolBytes uint64 `json:"pool_bytes"`
	// Pools counts the pools found with their header in RAM; EmptyPools
	// those of them holding no block (kept in their arena's free list).
	Pools      int `json:"pools"`
	EmptyPools int `json:"empty_pools"`
	// AllocatedBytes is Σ blocks in use × block size, each pool's capped
	// by its pages in RAM (a block in use has been written): what
	// sys._debugmallocstats() calls "bytes in allocated blocks".
	AllocatedBytes uint64 `json:"allocated_bytes"`
	// FreeBlockBytes is the free blocks of pools in use ("bytes in
	// available blocks"); EmptyPoolBytes the empty pools' size. Both are
	// CPython's count, resident or not.
	FreeBlockBytes uint64 `json:"free_block_bytes"`
	EmptyPoolBytes uint64 `json:"empty_pool_bytes"`
	// ResidentBytes is the RAM the pools found hold: their pages present.
	ResidentBytes uint64 `json:"resident_bytes"`
	// Arenas counts the arenas the pools name.
	Arenas int `json:"arenas"`
	// SkippedBytes is pool space not read because its first page is not
	// in RAM (never touched, or swapped out: reading would bring it back).
	SkippedBytes uint64 `json:"skipped_bytes"`
	// RejectedPools counts headers that passed alone but not together:
	// pools naming one arena spread over more than an arena's size.
	RejectedPools int `json:"rejected_pools,omitempty"`
	// Truncated says the scan stopped at a bound (MaxPools, the address
	// space it reads the page map of, or its deadline).
	Truncated bool `json:"truncated,omitempty"`
	// Source names where it came from.
	Source string `json:"source"`
}

// RetainedBytes is the RAM of the pools not holding objects in use: free
// blocks and empty pools (and the pools' headers) that pymalloc keeps.
func (s *Stats) RetainedBytes() uint64 { return s.ResidentBytes - s.AllocatedBytes }

// versionPattern finds CPython's version in an interpreter's file name:
// python3.11, libpython3.12.so.1.0, python3.13t (free-threaded). Compiled on
// first use.
var versionPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?:^|/)(?:lib)?python(\d+)\.(\d+)(t?)(?:\.so[.\d]*|d|m)?$`)
})

// Interpreter is a CPython version.
type Interpreter struct {
	Major, Minor int
	// FreeThreaded is the build without the GIL (python3.13t), whose
	// allocator is mimalloc.
	FreeThreaded bool
}

func (v Interpreter) String() string { return fmt.Sprintf("%d.%d", v.Major, v.Minor) }

// Version returns CPython's version from the name of a mapped file, and
// whether it is a CPython 3 interpreter at all.
func Version(path string) (Interpreter, bool) {
	m := versionPattern().FindStringSubmatch(path)
	if m == nil {
		return Interpreter{}, false
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	return Interpreter{major, minor, m[3] == "t"}, major == 3
}

// Geometry returns POOL_SIZE and ARENA_SIZE for a CPython version: 16 KiB
// pools in 1 MiB arenas with the radix tree of 3.10+ on 64-bit, 4 KiB (the
// page) in 256 KiB before.
func (v Interpreter) Geometry() (pool, arena uint64, err error) {
	switch {
	case v.FreeThreaded:
		return 0, 0, fmt.Errorf("%w: python%st allocates with mimalloc", ErrUnsupported, v)
	case v.Major == 3 && v.Minor >= 10:
		return 16 << 10, 1 << 20, nil
	case v.Major == 3 && v.Minor >= 8:
		return 4 << 10, 256 << 10, nil
	}
	return 0, 0, fmt.Errorf("%w: python%s", ErrUnsupported, v)
}

// header is a pool header as read, before it is believed.
type header struct {
	count, arena, szidx, next, maxNext uint32
	freeblock, nextpool, prevpool      uint64
}

func parseHeader(b []byte) header {
	le := binary.LittleEndian
	return header{
		count:     le.Uint32(b[0:]),
		freeblock: le.Uint64(b[8:]),
		nextpool:  le.Uint64(b[16:]),
		prevpool:  le.Uint64(b[24:]),
		arena:     le.Uint32(b[32:]),
		szidx:     le.Uint32(b[36:]),
		next:      le.Uint32(b[40:]),
		maxNext:   le.Uint32(b[44:]),
	}
}

// maxArenaIndex bounds arenaindex: CPython's arena table grows by
// doubling from 16, and 2^24 arenas would be 16 TiB of small objects.
const maxArenaIndex = 1 << 24

// valid checks a header read at addr against what CPython keeps true of
// an initialised pool of poolBytes (init_pool, pymalloc_alloc/free):
//   - szidx names one of the 32 size classes; block size (szidx+1)·16
//   - maxnextoffset = POOL_SIZE − size
//   - nextoffset = POOL_OVERHEAD + k·size, 2 ≤ k, and ≤ POOL_SIZE
//   - blocks in use ≤ the blocks carved so far (nextoffset's)
//   - the free list head is inside the pool, on a block, or NULL
//   - a pool in use is linked: nextpool and prevpool set, each another
//     pool's boundary or outside the memory searched (the list's head, in
//     the interpreter's state); an empty pool's nextpool is the next free
//     pool or NULL
//
// inSearched says whether an address lies in the memory searched. It
// returns the block size.
func (h header) valid(addr, poolBytes uint64, inSearched func(uint64) bool) (uint64, bool) {
	if h.szidx >= sizeClasses || h.arena >= maxArenaIndex {
		return 0, false
	}
	size := uint64(h.szidx+1) * alignment
	if uint64(h.maxNext) != poolBytes-size {
		return 0, false
	}
	next := uint64(h.next)
	if next < headerBytes+2*size || next > poolBytes || (next-headerBytes)%size != 0 {
		return 0, false
	}
	carved := (next - headerBytes) / size
	if uint64(h.count) > carved {
		return 0, false
	}
	if h.freeblock != 0 {
		if h.freeblock < addr+headerBytes || h.freeblock >= addr+poolBytes || (h.freeblock-addr-headerBytes)%size != 0 {
			return 0, false
		}
	}
	link := func(p uint64) bool {
		return p != 0 && p%8 == 0 && (p%poolBytes == 0 || !inSearched(p))
	}
	if h.count == 0 {
		if h.nextpool != 0 && h.nextpool%poolBytes != 0 {
			return 0, false
		}
	} else if !link(h.nextpool) || !link(h.prevpool) {
		return 0, false
	}
	return size, true
}

// capacity is how many blocks of size a pool of poolBytes holds.
func capacity(size, poolBytes uint64) uint64 { return (poolBytes - headerBytes) / size }
