// Package glibcheap reads glibc's malloc state out of a live process's
// memory — no code run in it, no debugger — and gives what the process's
// own malloc_info(3) and mallinfo2(3) would: per arena the memory it holds,
// its fast bins, its bins and its top chunk, the heaps of a non-main arena,
// and the chunks mmapped outside every arena.
//
// The arenas are found without debug symbols: main_arena and mp_ in
// libc's writable data by their shape (the empty bins of a malloc_state
// point at themselves; mp_.sbrk_base is where [heap] starts), the other
// arenas through the ring from main_arena, each checked against the
// heap_info at the start of its 64 MiB heap; where the host has libc's
// debug file for the process's build-id (Debian's libc6-dbg), its symbols
// name both. The layouts are those of glibc 2.27 to 2.43.
//
// Every byte read is the target's to decide: walks are bounded by what the
// arena could hold, every pointer must land in readable memory of the
// right arena, every size must be one a chunk can have, lists are checked
// both ways, and a heap that does not add up is an error naming the arena
// and the address (ErrCorrupt), never a figure.
package glibcheap

import (
	"sort"
	"time"

	"github.com/memdiag/memdiag/internal/procmem"
)

// Heap is glibc's malloc state in one process at one instant.
type Heap struct {
	// PID is the process read, 0 for an image.
	PID int
	// Version is the process's glibc; Library the path it maps it from.
	Version Version
	Library string
	// Arenas are main_arena and the others, in the ring's order (the
	// order of malloc_info's <heap nr=…>).
	Arenas []Arena
	// MmappedChunks and MmappedBytes are mp_.n_mmaps and mp_.mmapped_mem:
	// the chunks malloc mmapped outside every arena (hblks and hblkhd).
	MmappedChunks int
	MmappedBytes  uint64
	// Found says how main_arena and mp_ were found, in words.
	Found string
	// Stopped is whether the process's threads were stopped for the read;
	// Pause is what that cost them. Figures read while it ran may be torn.
	Stopped bool
	Pause   procmem.Pause
	// ReadTime is how long the walk took; Reads and ReadBytes what it read.
	ReadTime  time.Duration
	Reads     int
	ReadBytes uint64
	// Notes say what a reader of the figures should know: an arena locked
	// at the instant of the read, a retry.
	Notes []string
}

// Arena is one malloc_state.
type Arena struct {
	Index   int
	Address uint64
	Main    bool
	// Locked is whether a thread held the arena's lock at the instant of
	// the read: inside malloc or free, its lists may be mid-update.
	Locked bool
	// SystemBytes and MaxSystemBytes are system_mem and max_system_mem.
	SystemBytes, MaxSystemBytes uint64
	// TopBytes is the top chunk's size.
	TopBytes uint64
	// Fast are the fast bins (none from glibc 2.43).
	Fast [nFastbins]FastBin
	// Bins are bins 1 (unsorted) to 127: Bins[i-1] is bin i.
	Bins [nBins - 1]Bin
	// Heaps, HeapBytes and HeapMprotectBytes are a non-main arena's heaps:
	// how many, their size and what of it is mprotected read-write.
	Heaps                        int
	HeapBytes, HeapMprotectBytes uint64
	heapRanges                   [][2]uint64
	heapsSorted                  bool
	// walkErr is why the arena's lists did not add up at this read.
	walkErr error
	// earlier marks a read kept from an earlier stop than the heap's.
	earlier bool
}

// quality ranks reads of an arena: one that added up with its lock free
// beats one taken while a thread held it, which beats one that did not
// add up.
func (a *Arena) quality() int {
	switch {
	case a.walkErr != nil:
		return 0
	case a.Locked:
		return 1
	}
	return 2
}

// FastBin is one fast bin's free chunks.
type FastBin struct {
	Count int
	// ChunkBytes is the first chunk's size (the bin's size class);
	// SumBytes the sum of all its chunks' sizes.
	ChunkBytes, SumBytes uint64
}

// Bin is one regular bin's free chunks.
type Bin struct {
	Count int
	// Bytes is the sum of the chunks' sizes.
	Bytes uint64
	// From, To and RawBytes are as malloc_info prints them: the size
	// fields with their flag bits (PREV_INUSE, NON_MAIN_ARENA) left in.
	From, To, RawBytes uint64
}

func (b *Bin) add(size uint64) {
	if b.Count == 0 || size < b.From {
		b.From = size
	}
	b.To = max(b.To, size)
	b.Count++
	b.RawBytes += size
	b.Bytes += size &^ chunkFlags
}

// inHeaps reports whether p lies in one of the arena's heaps (a binary
// search: the process decides how many there are).
func (a *Arena) inHeaps(p uint64) bool {
	rs := a.heapRanges
	if !a.heapsSorted {
		sort.Slice(rs, func(i, j int) bool { return rs[i][0] < rs[j][0] })
		a.heapsSorted = true
	}
	i := sort.Search(len(rs), func(i int) bool { return rs[i][1] > p })
	return i < len(rs) && rs[i][0] <= p
}

// FastBytes is the bytes free in the fast bins, and FastChunks their count.
func (a *Arena) FastBytes() (bytes uint64, chunks int) {
	for _, f := range a.Fast {
		bytes += f.SumBytes
		chunks += f.Count
	}
	return bytes, chunks
}

// BinBytes is the bytes free in the regular bins, and BinChunks their count.
func (a *Arena) BinBytes() (bytes uint64, chunks int) {
	for _, b := range a.Bins {
		bytes += b.Bytes
		chunks += b.Count
	}
	return bytes, chunks
}

// FreeBytes is what mallinfo counts free in the arena: the top chunk, the
// fast bins and the bins. Chunks in a thread's tcache count as in use, as
// glibc counts them.
func (a *Arena) FreeBytes() uint64 {
	fast, _ := a.FastBytes()
	bins, _ := a.BinBytes()
	return a.TopBytes + fast + bins
}

// Mallinfo2 is glibc's struct mallinfo2.
type Mallinfo2 struct {
	Arena    uint64 // non-mmapped space allocated from the system
	Ordblks  uint64 // free chunks, the top chunks among them
	Smblks   uint64 // free chunks in fast bins
	Hblks    uint64 // mmapped chunks
	Hblkhd   uint64 // bytes in mmapped chunks
	Usmblks  uint64 // always 0
	Fsmblks  uint64 // bytes free in fast bins
	Uordblks uint64 // bytes in use
	Fordblks uint64 // bytes free
	Keepcost uint64 // the main arena's top chunk: what malloc_trim could return
}

// Mallinfo2 totals the heap as glibc's mallinfo2() does.
func (h *Heap) Mallinfo2() Mallinfo2 {
	m := Mallinfo2{Hblks: uint64(h.MmappedChunks), Hblkhd: h.MmappedBytes}
	for i := range h.Arenas {
		a := &h.Arenas[i]
		fast, nfast := a.FastBytes()
		_, nbins := a.BinBytes()
		free := a.FreeBytes()
		m.Smblks += uint64(nfast)
		m.Ordblks += 1 + uint64(nbins)
		m.Fordblks += free
		m.Uordblks += a.SystemBytes - free
		m.Arena += a.SystemBytes
		m.Fsmblks += fast
		if a.Main {
			m.Keepcost = a.TopBytes
		}
	}
	return m
}
