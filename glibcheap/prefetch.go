package glibcheap

import (
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// The walk follows each free list a chunk at a time, and every chunk on a
// page not read yet cost one read of the process's memory: a fragmented
// heap of 10,000 free chunks, 10,000 reads while the process is stopped.
// Before an arena's lists are walked, prefetch follows all of them at once,
// a step of each list a round, and reads the chunk headers each round needs
// in one vectored read (process_vm_readv): as many reads as the longest
// list has chunks, not as the lists have in all. The walk then finds the
// headers in the reader. Prefetching decides nothing: it checks just enough
// to stop at what is not a chunk, and the walk checks everything again.

// VectorMemory is a Memory that also reads many ranges in one call.
// ReadVec fills bufs[i] from addrs[i] in order and returns the bytes read:
// short at the first range it could not read whole.
type VectorMemory interface {
	Memory
	ReadVec(bufs [][]byte, addrs []uint64) (int, error)
}

// maxIOV is the ranges one vectored read takes (the kernel's UIO_MAXIOV).
const maxIOV = 1024

// listCursor is where prefetch is in one free list.
type listCursor struct {
	p, head uint64 // the next chunk, and the bin's own address (0: a fast bin)
	fast    bool
	left    uint64 // steps before the list is taken for a loop
}

// hdrLen is what the walk reads of a free chunk: its size and its two
// links, [p+8, p+32).
const hdrLen = 3 * sizeSz

// minBatch is the fewest chunks read in one vectored read; fewer are read
// a page each, as the walk reads them.
const minBatch = 2

// maxHdrs bounds the chunk headers prefetched for one arena (6 MiB).
const maxHdrs = 1 << 18

// prefetch reads ahead the headers of arena a's free chunks; state is its
// malloc_state. Only the 24 bytes the walk reads of each chunk are read,
// not its page: the kernel's cost is mostly per page copied, and a page of
// this process's own for each would fault in 4 KiB more.
func (w *walker) prefetch(a *Arena, state []byte) {
	vm, ok := w.r.mem.(VectorMemory)
	if !ok {
		return
	}
	limit := w.maxChunks(a)
	var cur []listCursor
	if w.l.fastbins >= 0 {
		for i := range nFastbins {
			cur = append(cur, listCursor{p: le64(state, w.l.fastbins+8*i), fast: true, left: limit})
		}
	}
	for i := 1; i < nBins; i++ {
		slot := w.l.bins + (i-1)*16
		if fd := le64(state, slot); fd != 0 {
			cur = append(cur, listCursor{p: fd, head: w.l.binAt(a.Address, i), left: limit})
		}
	}
	clear(w.r.hdrs) // earlier arenas' chunks are not this one's
	if w.r.hdrs == nil {
		w.r.hdrs = map[uint64][hdrLen]byte{}
	}
	if h := w.r.hints; h != nil && h.learning {
		defer h.learn(a.Address, w.r.hdrs)
	} else if ps := h.of(a.Address); len(ps) > 0 {
		w.r.fetch(vm, ps)
	}
	var need []uint64
	for {
		if w.r.pastDeadline() {
			return // the walk reports it at its first chunk
		}
		if cur = liveLists(cur, a); len(cur) == 0 {
			return
		}
		need = need[:0]
		for _, c := range cur {
			if _, ok := w.r.hdrs[c.p]; ok {
				continue
			}
			var h [hdrLen]byte
			if w.r.cached(h[:], c.p+sizeSz) {
				w.r.hdrs[c.p] = h // on a page read before: no read
				continue
			}
			need = append(need, c.p)
		}
		need = dedupe(need)
		if len(w.r.hdrs)+len(need) > maxHdrs {
			return
		}
		if len(need) < minBatch {
			// Few lists left: read their pages, as the walk would, so that
			// the next chunks on them cost nothing.
			for _, p := range need {
				var h [hdrLen]byte
				if w.r.read(h[:], p+sizeSz) == nil {
					w.r.hdrs[p] = h
				}
			}
		} else {
			w.r.fetch(vm, need)
		}
		for i := range cur {
			c := &cur[i]
			c.left--
			h, ok := w.r.hdrs[c.p]
			if !ok {
				c.p = 0 // unreadable: the walk will say so
				continue
			}
			next := le64(h[:], sizeSz)
			if c.fast && w.l.safeLinking {
				next ^= (c.p + 2*sizeSz) >> 12
			}
			c.p = next
		}
	}
}

// chunkHints carries, from a walk made while the process ran, where each
// arena's free chunks were. The walk with the threads stopped then reads
// their headers first, a thousand to a vectored read, rather than a round
// of reads per chunk of the longest list: what was a pause of one read per
// chunk of a fragmented bin becomes a few reads. Only addresses cross over:
// what is at them is read again with the threads stopped, and the walk
// checks it as ever; a list that changed in between is followed, round by
// round, from where it leaves the hints.
type chunkHints struct {
	learning bool // the walk that fills them, unstopped
	mu       sync.Mutex
	byArena  map[uint64][]uint64
	n        int
}

// maxHints bounds the addresses kept over all arenas (2 MiB).
const maxHints = maxHdrs

// learn keeps the chunks prefetch found in the arena at arena.
func (h *chunkHints) learn(arena uint64, hdrs map[uint64][hdrLen]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n+len(hdrs) > maxHints {
		return
	}
	ps := make([]uint64, 0, len(hdrs))
	for p := range hdrs {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	h.byArena[arena] = ps
	h.n += len(ps)
}

// of is where the arena at arena had its free chunks; nil hints have none.
func (h *chunkHints) of(arena uint64) []uint64 {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byArena[arena]
}

// dedupe removes repeated addresses, keeping the first of each.
func dedupe(ps []uint64) []uint64 {
	seen := make(map[uint64]bool, len(ps))
	out := ps[:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// fetch reads the headers of the chunks at ps into r.hdrs, maxIOV at a
// time, skipping those outside the readable mappings. A header the read
// fails at, and those after it in its batch, are left to the walk. The
// kernel's cost is per page: a vectored read of a thousand headers on as
// many pages takes about a millisecond, so batches are read on every core
// at once.
func (r *reader) fetch(vm VectorMemory, ps []uint64) {
	type batch struct {
		bufs  [][]byte
		addrs []uint64
		n     int
	}
	var batches []*batch
	for len(ps) > 0 {
		b := &batch{}
		buf := make([]byte, hdrLen*min(len(ps), maxIOV))
		for len(ps) > 0 && len(b.addrs) < maxIOV {
			p := ps[0]
			ps = ps[1:]
			if _, ok := r.mapping(p + sizeSz); !ok {
				continue
			}
			if _, ok := r.mapping(p + sizeSz + hdrLen - 1); !ok {
				continue
			}
			i := len(b.addrs)
			b.bufs = append(b.bufs, buf[i*hdrLen:(i+1)*hdrLen:(i+1)*hdrLen])
			b.addrs = append(b.addrs, p+sizeSz)
		}
		if len(b.addrs) > 0 {
			batches = append(batches, b)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(batches)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(batches); i = int(next.Add(1) - 1) {
				b := batches[i]
				b.n, _ = vm.ReadVec(b.bufs, b.addrs)
			}
		})
	}
	wg.Wait()
	for _, b := range batches {
		r.reads++
		r.bytes += uint64(max(b.n, 0))
		for i := 0; i < len(b.addrs) && b.n >= (i+1)*hdrLen; i++ {
			r.hdrs[b.addrs[i]-sizeSz] = [hdrLen]byte(b.bufs[i])
		}
	}
}

// header fills b from addr when a prefetched chunk header holds all of it.
func (r *reader) header(b []byte, addr uint64) bool {
	if len(r.hdrs) == 0 || addr < sizeSz {
		return false
	}
	p := (addr - sizeSz) &^ (malignment - 1)
	h, ok := r.hdrs[p]
	if !ok || addr+uint64(len(b)) > p+sizeSz+hdrLen {
		return false
	}
	copy(b, h[addr-p-sizeSz:])
	return true
}

// cached fills b from addr when every page it spans is in the cache.
func (r *reader) cached(b []byte, addr uint64) bool {
	for len(b) > 0 {
		base := addr &^ (pageSize - 1)
		p, ok := r.pages[base]
		if !ok {
			return false
		}
		n := copy(b, p[addr-base:])
		b, addr = b[n:], addr+uint64(n)
	}
	return true
}

// liveLists drops from cur the lists that ended or left the arena.
func liveLists(cur []listCursor, a *Arena) []listCursor {
	live := cur[:0]
	for _, c := range cur {
		if c.p != 0 && c.p != c.head && c.left > 0 && c.p%malignment == 0 && (a.Main || a.inHeaps(c.p)) {
			live = append(live, c)
		}
	}
	return live
}
