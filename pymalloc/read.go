package pymalloc

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/memdiag/memdiag/internal/procmem"
)

// Bounds of a scan. MaxPools: 2^22 pools of 16 KiB are 64 GiB of small
// objects. MaxAddressSpace: the address space whose page map is read — a
// sparse reservation of terabytes holds few pages, but its page map is
// read whole. Past either, the figures are those of the pools read, and
// say so.
const (
	MaxPools        = 1 << 22
	MaxAddressSpace = 256 << 30
)

// chunkBytes is how much address space one page-map read covers; a
// multiple of every pool size.
const chunkBytes = 256 << 20

// processMemory is what readPools needs of a live process: its memory and which of
// its pages are in RAM. *procmem.Process is one.
type processMemory interface {
	ReadAt(b []byte, addr int64) (int, error)
	Present(start, end uint64) ([]bool, error)
}

// Range is address space to look for pools in: an anonymous read-write
// mapping with pages in RAM, where pymalloc's mmapped arenas are.
type Range struct{ Start, End uint64 }

// ReadProcess reads the pools of a live CPython process of version v in
// ranges (its anonymous read-write mappings), until deadline.
func ReadProcess(p *procmem.Process, v Interpreter, ranges []Range, deadline time.Time) (*Stats, error) {
	pool, arena, err := v.Geometry()
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", p.PID, err)
	}
	s, err := readPools(p, ranges, pool, arena, deadline)
	if err != nil {
		return nil, err
	}
	s.Version = v.String()
	s.Source = fmt.Sprintf("pymalloc pools of process %d (read from its memory)", p.PID)
	return s, nil
}

// found is a pool whose header was believed: 24 bytes, so that the
// bound of MaxPools holds what is kept to 96 MiB.
type found struct {
	addr           uint64
	arena, count   uint32
	size, resident uint32
}

// readPools looks for pools of poolBytes, in arenas of arenaBytes, in ranges of
// mem, until deadline (zero: none). Only pools whose first page is in RAM
// are read, so nothing is faulted in or swapped back. Headers are believed
// one by one (header.valid), then together: the pools that name one arena
// must lie within one arena's size, or none of them is counted.
func readPools(mem processMemory, ranges []Range, poolBytes, arenaBytes uint64, deadline time.Time) (*Stats, error) {
	sorted := append([]Range(nil), ranges...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	inSearched := func(a uint64) bool {
		i := sort.Search(len(sorted), func(i int) bool { return sorted[i].End > a })
		return i < len(sorted) && sorted[i].Start <= a
	}
	sc := scan{mem: mem, pool: poolBytes, page: uint64(os.Getpagesize()), inSearched: inSearched, deadline: deadline, s: &Stats{PoolBytes: poolBytes}}
	var budget uint64 = MaxAddressSpace
	for _, r := range sorted {
		if budget == 0 || sc.s.Truncated {
			sc.s.Truncated = true
			break
		}
		first := (r.Start + poolBytes - 1) / poolBytes * poolBytes
		last := r.End / poolBytes * poolBytes // pools end by here
		if last <= first {
			continue
		}
		if last-first > budget {
			last, sc.s.Truncated = first+budget/poolBytes*poolBytes, true
		}
		budget -= last - first
		if err := sc.chunks(first, last); err != nil {
			return nil, err
		}
	}
	sc.total(arenaBytes)
	return sc.s, nil
}

type scan struct {
	mem        processMemory
	pool, page uint64
	inSearched func(uint64) bool
	deadline   time.Time
	pools      []found
	s          *Stats
}

func (sc *scan) late() bool { return !sc.deadline.IsZero() && time.Now().After(sc.deadline) }

// chunks reads the pools of [first, last), both pool boundaries, a page
// map read at a time.
func (sc *scan) chunks(first, last uint64) error {
	for start := first; start < last; start += chunkBytes {
		if sc.late() || len(sc.pools) >= MaxPools {
			sc.s.Truncated = true
			return nil
		}
		end := min(last, start+chunkBytes)
		present, err := sc.mem.Present(start, end)
		if err != nil {
			if errors.Is(err, procmem.ErrNoProcess) {
				return err
			}
			continue // unmapped meanwhile
		}
		if err := sc.pages(start, end, present); err != nil {
			return err
		}
	}
	return nil
}

// pages reads the pools of [start, end), whose pages' presence is given.
func (sc *scan) pages(start, end uint64, present []bool) error {
	buf := make([]byte, headerBytes)
	perPool := sc.pool / sc.page
	for addr, i := start, uint64(0); addr < end; addr, i = addr+sc.pool, i+perPool {
		if i >= uint64(len(present)) || !present[i] {
			sc.s.SkippedBytes += sc.pool
			continue
		}
		if len(sc.pools) >= MaxPools {
			sc.s.Truncated = true
			return nil
		}
		if _, err := sc.mem.ReadAt(buf, int64(addr)); err != nil {
			if errors.Is(err, procmem.ErrNoProcess) {
				return err
			}
			continue
		}
		h := parseHeader(buf)
		size, ok := h.valid(addr, sc.pool, sc.inSearched)
		if !ok {
			continue
		}
		var resident uint64
		for k := i; k < i+perPool && k < uint64(len(present)); k++ {
			if present[k] {
				resident += sc.page
			}
		}
		sc.pools = append(sc.pools, found{addr: addr, arena: h.arena, count: h.count, size: uint32(size), resident: uint32(resident)})
	}
	return nil
}

// total sums the pools of arenas that hold together.
func (sc *scan) total(arenaBytes uint64) {
	type span struct{ lo, hi uint64 }
	spans := map[uint32]*span{}
	for _, f := range sc.pools {
		if sp := spans[f.arena]; sp == nil {
			spans[f.arena] = &span{f.addr, f.addr}
		} else {
			sp.lo, sp.hi = min(sp.lo, f.addr), max(sp.hi, f.addr)
		}
	}
	arenas := 0
	for _, sp := range spans {
		if sp.hi+sc.pool-sp.lo <= arenaBytes {
			arenas++
		}
	}
	s := sc.s
	s.Arenas = arenas
	for _, f := range sc.pools {
		if sp := spans[f.arena]; sp.hi+sc.pool-sp.lo > arenaBytes {
			s.RejectedPools++
			continue
		}
		s.Pools++
		s.ResidentBytes += uint64(f.resident)
		if f.count == 0 {
			s.EmptyPools++
			s.EmptyPoolBytes += sc.pool
			continue
		}
		size := uint64(f.size)
		// A block in use has been written, so it is in RAM: a header
		// claiming more than its pool's resident pages hold is capped.
		s.AllocatedBytes += min(uint64(f.count)*size, uint64(f.resident)-headerBytes)
		s.FreeBlockBytes += (capacity(size, sc.pool) - uint64(f.count)) * size
	}
}
