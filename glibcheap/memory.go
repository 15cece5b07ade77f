package glibcheap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// Memory is a process's address space: /proc/PID/mem, or an image of it in
// tests. ReadAt reads at a virtual address.
type Memory interface {
	ReadAt(b []byte, addr int64) (int, error)
}

const (
	pageSize = 4096
	// maxCachedPages bounds the page cache: 32 MiB of the target's memory
	// at most, whatever the heap holds.
	maxCachedPages = 8192
)

// reader reads the target's memory a page at a time, keeping the pages it
// read (chunk headers in one page cost one read), and only where the
// process has readable memory: an address outside every mapping is
// refused before any read, as a pointer that does not add up.
type reader struct {
	mem   Memory
	maps  []proc.Mapping // sorted by start
	pages map[uint64][]byte
	// hdrs are the free chunks' headers prefetch read, by chunk address.
	hdrs map[uint64][hdrLen]byte
	// hints are where the free chunks were, learnt or to be learnt.
	hints *chunkHints
	slab  []byte            // where the next cached page is cut from
	slabs []*[slabSize]byte // every slab taken, for release
	used  int               // slabs cut from since the cache was last emptied
	// writable caches writableBytes.
	writable uint64
	// chunks counts the chunks visited, against maxWalk.
	chunks int
	// deadline, when set, is when the walk must end (Reader.MaxPause).
	deadline   time.Time
	overBudget bool
	reads      int
	bytes      uint64
}

func newReader(mem Memory, maps []proc.Mapping) *reader {
	sorted := append([]proc.Mapping(nil), maps...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	return &reader{mem: mem, maps: sorted, pages: map[uint64][]byte{}}
}

// writableBytes is the size of the process's writable mappings: where any
// arena's chunks can lie.
func (r *reader) writableBytes() uint64 {
	if r.writable == 0 {
		for _, m := range r.maps {
			if m.Writable() {
				r.writable += m.Size()
			}
		}
	}
	return r.writable
}

// mapping returns the readable mapping holding addr.
func (r *reader) mapping(addr uint64) (proc.Mapping, bool) {
	i := sort.Search(len(r.maps), func(i int) bool { return r.maps[i].End > addr })
	if i == len(r.maps) || r.maps[i].Start > addr || !r.maps[i].Readable() {
		return proc.Mapping{}, false
	}
	return r.maps[i], true
}

// errBadPointer marks an address the heap names that the process has no
// readable memory at.
var errBadPointer = errors.New("no readable memory there")

// page returns the page at base (page-aligned).
func (r *reader) page(base uint64) ([]byte, error) {
	if p, ok := r.pages[base]; ok {
		return p, nil
	}
	if _, ok := r.mapping(base); !ok {
		return nil, fmt.Errorf("%#x: %w", base, errBadPointer)
	}
	p := r.newPage()
	n, err := r.mem.ReadAt(p, int64(base))
	r.reads++
	r.bytes += uint64(n)
	if err != nil {
		return nil, err
	}
	r.pages[base] = p
	return p, nil
}

// newPage returns a page's room in the cache, emptying the cache when it
// is full.
func (r *reader) newPage() []byte {
	if len(r.pages) >= maxCachedPages {
		// Full: start again, cutting pages from the same slabs.
		clear(r.pages)
		r.slab, r.used = nil, 0
	}
	// Pages are cut from slabs of 64, kept from one read to the next:
	// memory the kernel need not fault in again for every read.
	if len(r.slab) == 0 {
		if r.used == len(r.slabs) {
			r.slabs = append(r.slabs, slabPool.Get().(*[slabSize]byte))
		}
		r.slab = r.slabs[r.used][:]
		r.used++
	}
	p := r.slab[:pageSize:pageSize]
	r.slab = r.slab[pageSize:]
	return p
}

const slabSize = 64 * pageSize

var slabPool = sync.Pool{New: func() any { return new([slabSize]byte) }}

// pastDeadline reports whether the walk has run past its deadline, and
// stays so once it has.
func (r *reader) pastDeadline() bool {
	if !r.overBudget && !r.deadline.IsZero() && time.Now().After(r.deadline) {
		r.overBudget = true
	}
	return r.overBudget
}

// fork returns a reader of the same memory with a cache of its own, for
// another goroutine.
func (r *reader) fork() *reader {
	return &reader{mem: r.mem, maps: r.maps, pages: map[uint64][]byte{}, deadline: r.deadline, hints: r.hints}
}

// release hands the reader's cached pages back; it must not be used after.
func (r *reader) release() {
	for _, s := range r.slabs {
		slabPool.Put(s)
	}
	r.slabs, r.slab, r.pages, r.hdrs = nil, nil, nil, nil
}

// read fills b from addr.
func (r *reader) read(b []byte, addr uint64) error {
	for len(b) > 0 {
		if addr+uint64(len(b)) < addr {
			return fmt.Errorf("%#x: %w", addr, errBadPointer)
		}
		if r.header(b, addr) {
			return nil
		}
		base := addr &^ (pageSize - 1)
		p, err := r.page(base)
		if err != nil {
			return err
		}
		n := copy(b, p[addr-base:])
		b, addr = b[n:], addr+uint64(n)
	}
	return nil
}

// u64 reads the 8-byte little-endian word at addr.
func (r *reader) u64(addr uint64) (uint64, error) {
	var b [8]byte
	if err := r.read(b[:], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// bulk reads a whole range without caching it: libc's data, searched
// once.
func (r *reader) bulk(addr, size uint64) ([]byte, error) {
	b := make([]byte, size)
	n, err := r.mem.ReadAt(b, int64(addr))
	r.reads++
	r.bytes += uint64(n)
	if err != nil {
		return nil, err
	}
	return b, nil
}

func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

func le32(b []byte, off int) int32 { return int32(binary.LittleEndian.Uint32(b[off:])) }
