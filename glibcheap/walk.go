package glibcheap

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrCorrupt means the heap does not add up: a pointer to nowhere, a chunk
// size no bin holds, a list that loops. In a process that was stopped for
// the read that is a finding of its own (heap corruption); read while it
// ran, it may be a list caught mid-update.
var ErrCorrupt = errors.New("the heap does not add up")

// ErrTooLarge means the heap holds more free chunks than one read walks.
var ErrTooLarge = errors.New("too many free chunks to read")

// maxWalk bounds the chunks one reader visits: at about 3.5 µs a chunk,
// a minute of a stopped process's time.
const maxWalk = 1 << 24

// maxArenas bounds the arena ring: glibc's own limit is 8 per core unless
// M_ARENA_MAX raises it, and a 64 MiB heap each caps them far below this.
const maxArenas = 1 << 16

// walker reads one process's arenas with one layout.
type walker struct {
	r *reader
	l layout
	// heapMax is the size and alignment of a non-main arena's heaps:
	// HEAP_MAX_SIZE, or four huge pages where glibc.malloc.hugetlb asks
	// for them.
	heapMax uint64
	// mainArena is main_arena's address: the ring starts and ends there.
	mainArena uint64
}

// corrupt wraps ErrCorrupt with where and what.
func (w *walker) corrupt(a *Arena, format string, args ...any) error {
	return fmt.Errorf("%w: arena %d (malloc_state at %#x): %s", ErrCorrupt, a.Index, a.Address, fmt.Sprintf(format, args...))
}

// arenas walks the ring of arenas from main_arena, then every arena's
// heaps and lists.
func (w *walker) arenas() ([]Arena, error) {
	var out []Arena
	var states [][]byte
	seen := map[uint64]bool{}
	addr := w.mainArena
	for i := 0; ; i++ {
		if i == maxArenas {
			return nil, fmt.Errorf("%w: more than %d arenas in the ring", ErrCorrupt, maxArenas)
		}
		if seen[addr] {
			return nil, fmt.Errorf("%w: the ring of arenas loops back to %#x without passing main_arena", ErrCorrupt, addr)
		}
		seen[addr] = true
		a, state, err := w.arena(i, addr)
		if err != nil {
			return nil, err
		}
		out, states = append(out, a), append(states, state)
		if next := le64(state, w.l.next); next != w.mainArena {
			addr = next
			continue
		}
		w.contentsAll(out, states)
		return out, nil
	}
}

// contentsAll walks the arenas' heaps and lists on every core: the lists
// of one arena are its own, and reads of the process's memory are
// independent of each other. The pause of a stopped process is mostly
// these reads, a few microseconds for each free chunk.
func (w *walker) contentsAll(arenas []Arena, states [][]byte) {
	workers := min(runtime.GOMAXPROCS(0), len(arenas))
	var next atomic.Int64
	var wg sync.WaitGroup
	readers := make([]*reader, workers)
	for k := range workers {
		wk := *w
		wk.r = w.r.fork()
		readers[k] = wk.r
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(arenas) {
					return
				}
				arenas[i].walkErr = wk.contents(&arenas[i], states[i])
			}
		})
	}
	wg.Wait()
	for _, r := range readers {
		w.r.reads += r.reads
		w.r.bytes += r.bytes
		r.release()
	}
}

// arena reads the malloc_state at addr, which names the next arena in the
// ring. What its lists hold is read after (contents); an error there is the
// arena's own (Arena.walkErr): the ring can still be followed, and the
// caller may read that arena again.
func (w *walker) arena(index int, addr uint64) (a Arena, state []byte, err error) {
	l := w.l
	a = Arena{Index: index, Address: addr, Main: addr == w.mainArena}
	if !a.Main {
		// A non-main arena's malloc_state follows the heap_info at the
		// start of its first heap.
		if (addr-uint64(l.heapInfoSize))%w.heapMax != 0 {
			return a, nil, fmt.Errorf("%w: arena %d at %#x is not at the start of a %d MiB heap", ErrCorrupt, index, addr, w.heapMax>>20)
		}
	}
	state = make([]byte, l.stateSize)
	if err := w.r.read(state, addr); err != nil {
		return a, nil, fmt.Errorf("%w: arena %d: reading its malloc_state at %#x: %v", ErrCorrupt, index, addr, err)
	}
	return a, state, nil
}

// contents reads an arena's sizes, heaps, top chunk and lists from its
// malloc_state.
func (w *walker) contents(a *Arena, state []byte) error {
	l := w.l
	a.Locked = le32(state, 0) != 0
	a.SystemBytes = le64(state, l.systemMem)
	a.MaxSystemBytes = le64(state, l.maxSystemMem)
	top := le64(state, l.top)
	if a.SystemBytes > a.MaxSystemBytes {
		return w.corrupt(a, "system_mem %d exceeds max_system_mem %d", a.SystemBytes, a.MaxSystemBytes)
	}
	if !a.Main {
		if err := w.heaps(a, top); err != nil {
			return err
		}
	}
	topSize, err := w.chunkSize(a, top, place{})
	if err != nil {
		return err
	}
	a.TopBytes = topSize &^ chunkFlags
	w.prefetch(a, state)
	if l.fastbins >= 0 {
		for i := range nFastbins {
			if err := w.fastbin(a, i, le64(state, l.fastbins+8*i)); err != nil {
				return err
			}
		}
	}
	for i := 1; i < nBins; i++ {
		slot := l.bins + (i-1)*16
		if err := w.bin(a, i, le64(state, slot), le64(state, slot+8)); err != nil {
			return err
		}
	}
	if free := a.FreeBytes(); free > a.SystemBytes {
		return w.corrupt(a, "its free chunks add up to %d bytes, more than the %d it holds", free, a.SystemBytes)
	}
	return nil
}

// maxChunks bounds one list: no arena holds more chunks than its memory
// has room for at MINSIZE each — its memory as the kernel maps it, since
// system_mem is the process's to write.
func (w *walker) maxChunks(a *Arena) uint64 {
	return min(a.SystemBytes, w.r.writableBytes())/minChunk + 1
}

// place says where a chunk was found, for messages: "the top chunk", "a
// chunk in fast bin 3", "a chunk in bin 12". It is formatted only for an
// error: the walk visits every free chunk.
type place struct {
	list string // "", "fast bin", "bin"
	bin  int
}

func (pl place) String() string {
	if pl.list == "" {
		return "the top chunk"
	}
	return fmt.Sprintf("a chunk in %s %d", pl.list, pl.bin)
}

// chunkSize checks that p can be a chunk of arena a and returns its size
// field, flags and all.
func (w *walker) chunkSize(a *Arena, p uint64, what place) (uint64, error) {
	if w.r.chunks++; w.r.overBudget || w.r.chunks%256 == 1 && !w.r.deadline.IsZero() && time.Now().After(w.r.deadline) {
		w.r.overBudget = true
		return 0, fmt.Errorf("%w: after %d chunks", errOverBudget, w.r.chunks)
	}
	if w.r.chunks > maxWalk {
		return 0, fmt.Errorf("%w: more than %d chunks in arena %d's lists and those before it: the read stops (a heap this fragmented would stop the process for a minute or more; --gdb asks its own malloc_info)", ErrTooLarge, maxWalk, a.Index)
	}
	if p%malignment != 0 {
		return 0, w.corrupt(a, "%s at %#x is misaligned", what, p)
	}
	if !a.Main && !a.inHeaps(p) {
		return 0, w.corrupt(a, "%s at %#x lies outside the arena's heaps", what, p)
	}
	size, err := w.r.u64(p + sizeSz)
	if err != nil {
		return 0, w.corrupt(a, "%s at %#x: %v", what, p, err)
	}
	cs := size &^ chunkFlags
	if cs < minChunk || cs%malignment != 0 || cs > a.SystemBytes {
		return 0, w.corrupt(a, "%s at %#x has size %d, which no chunk of this arena can have", what, p, cs)
	}
	return size, nil
}

// fastbin walks fast bin i from its head, following fd.
func (w *walker) fastbin(a *Arena, i int, p uint64) error {
	fb := &a.Fast[i]
	for p != 0 {
		if uint64(fb.Count) == w.maxChunks(a) {
			return w.corrupt(a, "fast bin %d holds more chunks than the arena has room for (a loop?)", i)
		}
		size, err := w.chunkSize(a, p, place{"fast bin", i})
		if err != nil {
			return err
		}
		cs := size &^ chunkFlags
		if int(cs>>4)-2 != i {
			return w.corrupt(a, "the chunk at %#x in fast bin %d has size %d, which belongs in another bin", p, i, cs)
		}
		if fb.Count == 0 {
			fb.ChunkBytes = cs
		}
		fb.Count++
		fb.SumBytes += cs
		fd, err := w.r.u64(p + 2*sizeSz)
		if err != nil {
			return w.corrupt(a, "the chunk at %#x in fast bin %d: %v", p, i, err)
		}
		if w.l.safeLinking {
			fd ^= (p + 2*sizeSz) >> 12
		}
		p = fd
	}
	return nil
}

// bin walks bin i (1 is the unsorted bin) forward from its fd, checking
// each chunk's bk against the one before, as glibc's own unlink does.
func (w *walker) bin(a *Arena, i int, fd, bk uint64) error {
	head := w.l.binAt(a.Address, i)
	b := &a.Bins[i-1]
	if fd == 0 {
		// An arena whose bins were never initialised: glibc's malloc_info
		// sees an empty bin too.
		return nil
	}
	prev := head
	for p := fd; p != head; {
		if uint64(b.Count) == w.maxChunks(a) {
			return w.corrupt(a, "bin %d holds more chunks than the arena has room for (a loop?)", i)
		}
		size, err := w.chunkSize(a, p, place{"bin", i})
		if err != nil {
			return err
		}
		var buf [16]byte
		links := buf[:]
		if err := w.r.read(links, p+2*sizeSz); err != nil {
			return w.corrupt(a, "the chunk at %#x in bin %d: %v", p, i, err)
		}
		if back := le64(links, 8); back != prev {
			return w.corrupt(a, "the chunk at %#x in bin %d points back to %#x, not to %#x before it", p, i, back, prev)
		}
		b.add(size)
		prev, p = p, le64(links, 0)
	}
	if bk != prev {
		return w.corrupt(a, "bin %d's last chunk is %#x by its links but %#x by the bin", i, prev, bk)
	}
	return nil
}

// heaps walks a non-main arena's heaps from the one holding its top chunk
// back to its first, as malloc_info does.
func (w *walker) heaps(a *Arena, top uint64) error {
	h := top &^ (w.heapMax - 1)
	seen := map[uint64]bool{}
	for h != 0 {
		if seen[h] || len(seen) == maxArenas {
			return w.corrupt(a, "its list of heaps loops at %#x", h)
		}
		// Each heap holds at least a page of the arena's memory.
		if uint64(len(seen)) > min(a.SystemBytes, w.r.writableBytes())/pageSize+1 {
			return w.corrupt(a, "it lists more heaps than its %d bytes fill", a.SystemBytes)
		}
		seen[h] = true
		if h%w.heapMax != 0 {
			return w.corrupt(a, "a heap at %#x is not %d MiB-aligned", h, w.heapMax>>20)
		}
		hdr := make([]byte, 32)
		if err := w.r.read(hdr, h); err != nil {
			return w.corrupt(a, "reading the heap_info at %#x: %v", h, err)
		}
		arPtr, prev, size, mprotect := le64(hdr, 0), le64(hdr, 8), le64(hdr, 16), le64(hdr, 24)
		switch {
		case arPtr != a.Address:
			return w.corrupt(a, "the heap at %#x belongs to the arena at %#x", h, arPtr)
		case size > w.heapMax || mprotect > w.heapMax || size < uint64(w.l.heapInfoSize):
			return w.corrupt(a, "the heap at %#x says it is %d bytes (%d mprotected); a heap is at most %d", h, size, mprotect, w.heapMax)
		}
		a.Heaps++
		a.HeapBytes += size
		a.HeapMprotectBytes += mprotect
		a.heapRanges = append(a.heapRanges, [2]uint64{h, h + size})
		h = prev
	}
	return nil
}
