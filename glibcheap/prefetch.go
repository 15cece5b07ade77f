package glibcheap

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
// fails at, and those after it in its batch, are left to the walk.
func (r *reader) fetch(vm VectorMemory, ps []uint64) {
	buf := make([]byte, hdrLen*min(len(ps), maxIOV))
	bufs := make([][]byte, 0, min(len(ps), maxIOV))
	addrs := make([]uint64, 0, min(len(ps), maxIOV))
	for len(ps) > 0 {
		bufs, addrs = bufs[:0], addrs[:0]
		for len(ps) > 0 && len(addrs) < maxIOV {
			p := ps[0]
			ps = ps[1:]
			if _, ok := r.mapping(p + sizeSz); !ok {
				continue
			}
			if _, ok := r.mapping(p + sizeSz + hdrLen - 1); !ok {
				continue
			}
			i := len(addrs)
			bufs = append(bufs, buf[i*hdrLen:(i+1)*hdrLen:(i+1)*hdrLen])
			addrs = append(addrs, p+sizeSz)
		}
		if len(addrs) == 0 {
			return
		}
		n, _ := vm.ReadVec(bufs, addrs)
		r.reads++
		r.bytes += uint64(max(n, 0))
		for i := 0; i < len(addrs) && n >= (i+1)*hdrLen; i++ {
			r.hdrs[addrs[i]-sizeSz] = [hdrLen]byte(bufs[i])
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
