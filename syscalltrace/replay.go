package syscalltrace

import (
	"io"
	"slices"
	"sort"
	"strings"
)

const pageSize = 4096

func pageUp(n uint64) uint64 { return (n + pageSize - 1) &^ (pageSize - 1) }

// Mapping is a range the trace saw mapped and not (yet) released.
type Mapping struct {
	Start, End uint64
	Space      int // the address space (process) it belongs to
	TID        int // the task that made it
	Comm       string
	Prot       string
	FlagsText  string
	Anonymous  bool
	FD         int64
	Path       string  // the mapped file, when the trace decoded it
	madeKey    float64 // the making call's completion (Event.DoneKey)
	Time       float64 // when it was made, as printed
	HasTime    bool
	Line       int     // the call's line in the trace
	Frames     []Frame // the call stack that made it, innermost first
	// ReleasedBytes were given back with madvise(DONTNEED/FREE/REMOVE): the
	// mapping stays, its pages need not be resident.
	ReleasedBytes uint64
	// Grown is set when mremap moved or resized it; Frames stay the maker's.
	Grown bool
	// Committed is set for memory made writable by mprotect inside a range
	// the trace never saw mapped: reserved before the trace began, put to
	// use during it — glibc growing an arena heap (grow_heap), a runtime
	// committing its reservation. Frames are the mprotect's.
	Committed bool
	// EndedBy is "exit" or "exec" when the address space ended with the
	// mapping still there: the program never unmapped it.
	EndedBy string
}

// Len is End − Start.
func (m *Mapping) Len() uint64 { return m.End - m.Start }

// space is one address space: the mappings the trace made in it.
type space struct {
	id       int
	tree     *addrTree
	brkStart uint64
	brkEnd   uint64
	leader   int // the task whose exit ends the space
}

func newSpace(id, leader int) *space {
	return &space{id: id, tree: &addrTree{}, leader: leader}
}

// madeDuring reports whether m was made by another task while e was in
// flight. A task's own calls are sequential whatever the clock says (perf's
// microsecond times can make a call seem to start before the previous one
// ended).
func madeDuring(m *Mapping, e *Event) bool {
	return m.madeKey > e.EnterKey && m.TID != e.TID
}

// validRanges rejects ranges that wrap around the top of the address space.
func validRanges(e *Event) bool {
	const maxLen = 1 << 62
	fits := func(addr, n uint64) bool { return n < maxLen && addr+pageUp(n) >= addr }
	switch e.Call {
	case CallMmap:
		// The kernel refuses a mapping of no bytes (EINVAL): a line saying
		// one succeeded would list an empty "leak" inside another mapping.
		return e.Len > 0 && fits(e.Ret, e.Len)
	case CallMunmap, CallMadvise, CallMprotect:
		return fits(e.Addr, e.Len)
	case CallMremap:
		return fits(e.Addr, e.Len) && fits(e.Ret, e.NewLen)
	}
	return true
}

// Point is one sample of the mapped-bytes timeline.
type Point struct {
	Event int     // events replayed so far
	Time  float64 // the event's time, when the trace has times
	Bytes uint64  // bytes mapped by traced calls, all spaces
}

// Stats count what the replay saw.
type Stats struct {
	Events           int
	Calls            [CallExit + 1]int // events by call
	Failed           int
	MappedBytes      uint64 // Σ lengths of successful mmap and mremap growth
	UnmappedBytes    uint64 // Σ bytes released by munmap, mremap shrink and moves
	PreexistingOps   int    // munmap/mremap/madvise of ranges never seen mapped
	PreexistingBytes uint64
	// CommittedBytes were made writable by mprotect in ranges reserved
	// before the trace (see Mapping.Committed); DecommittedBytes of them
	// made inaccessible again.
	CommittedBytes, DecommittedBytes uint64
	PeakBytes                        uint64
	PeakTime                         float64
	PeakEvent                        int
	BrkBytes                         uint64 // the heap's extent at the end, Σ over spaces
	ShmatCalls                       int
	Invalid                          int // calls whose ranges wrap past the top of the address space, or mmaps of no bytes: skipped
	Unpaired                         int // tasks whose exits ended nothing (threads)
}

// Replay rebuilds the address spaces from a stream of events.
type Replay struct {
	// SharedSpace puts every task into one address space unless the trace
	// shows a fork (clone without CLONE_VM) or exec: right for one traced
	// process and its threads, which strace -e trace=memory cannot tell apart.
	SharedSpace bool
	// Until stops applying events after this time (--at); 0: no limit.
	Until    float64
	HasUntil bool
	// StoppedAt is the time of the first event past Until, which ended
	// the replay.
	StoppedAt    float64
	HasStoppedAt bool

	spaces   map[int]*space
	taskOf   map[int]int // task → space id
	ended    []*Mapping  // mappings alive when their space ended
	mapped   uint64
	Stats    Stats
	timeline []Point
	stride   int
	stopped  bool
	scratch  []*Mapping
	// free holds Mappings wholly unmapped, for reuse; handedOut is set once
	// Outstanding has given mappings out, which ends reuse and cutting in
	// place.
	free      []*Mapping
	handedOut bool
	// Tasks' spaces, direct-mapped by task id: two map lookups per call
	// otherwise. Cleared when tasks or spaces change.
	spaceCache [64]cachedSpace
}

type cachedSpace struct {
	tid int
	s   *space
}

// NewReplay returns an empty replay.
func NewReplay(sharedSpace bool) *Replay {
	return &Replay{SharedSpace: sharedSpace, spaces: map[int]*space{}, taskOf: map[int]int{}, stride: 1}
}

const maxTimeline = 512

func (r *Replay) spaceOf(tid int) *space {
	slot := &r.spaceCache[uint(tid)%uint(len(r.spaceCache))]
	if slot.s != nil && slot.tid == tid {
		return slot.s
	}
	id, ok := r.taskOf[tid]
	if !ok {
		id = tid
		if r.SharedSpace && len(r.spaces) > 0 {
			id = r.firstSpace()
		}
		r.taskOf[tid] = id
	}
	s := r.spaces[id]
	if s == nil {
		s = newSpace(id, tid)
		r.spaces[id] = s
	}
	*slot = cachedSpace{tid, s}
	return s
}

func (r *Replay) firstSpace() int {
	first := -1
	for id := range r.spaces {
		if first < 0 || id < first {
			first = id
		}
	}
	return first
}

// ApplyAll replays every event src yields, to its io.EOF or, with Until,
// to the first event after it (the rest is not read); it stops at the first
// read error and returns it.
func (r *Replay) ApplyAll(src Reader) error {
	for !r.stopped {
		e, err := src.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		r.Apply(e)
	}
	return nil
}

// Apply replays one event. Failed calls change nothing.
func (r *Replay) Apply(e *Event) {
	if r.stopped {
		return
	}
	if r.HasUntil && e.HasTime && e.Time > r.Until {
		r.stopped = true
		r.StoppedAt, r.HasStoppedAt = e.Time, true
		return
	}
	r.Stats.Events++
	r.Stats.Calls[e.Call]++
	if e.Failed {
		r.Stats.Failed++
		r.sample(e)
		return
	}
	if !validRanges(e) {
		// A range past the end of the address space: no kernel wrote it.
		r.Stats.Invalid++
		r.sample(e)
		return
	}
	s := r.spaceOf(e.TID)
	switch e.Call {
	case CallMmap:
		r.mmap(s, e)
	case CallMunmap:
		r.munmap(s, e)
	case CallMremap:
		r.mremap(s, e)
	case CallBrk:
		r.brk(s, e)
	case CallMprotect:
		r.protect(s, e)
	case CallMadvise:
		switch e.Advice {
		case "DONTNEED", "FREE", "REMOVE":
			r.release(s, e.Addr, e.Addr+pageUp(e.Len), e)
		}
	case CallShmat:
		// The segment's size is not in the call; it is counted, not mapped.
		r.Stats.ShmatCalls++
	case CallShmdt:
		r.Stats.ShmatCalls++
	case CallClone, CallExec, CallExit:
		r.lifecycle(s, e)
	}
	r.sample(e)
}

// lifecycle replays the calls that change tasks and spaces: clone, exec and
// exit.
func (r *Replay) lifecycle(s *space, e *Event) {
	switch e.Call {
	case CallClone:
		clear(r.spaceCache[:]) // tasks and spaces change
		child := int(e.Ret)
		if child > 0 {
			if e.Flags&FlagCloneVM != 0 || r.SharedSpace && e.FlagsText == "" {
				r.taskOf[child] = s.id
			} else {
				// A new process: a copy of the parent's space the trace
				// did not see made; it starts empty ("pre-existing").
				r.taskOf[child] = child
				delete(r.spaces, child)
				r.spaceOf(child).leader = child
			}
		}
	case CallExec:
		clear(r.spaceCache[:])
		r.end(s, "exec")
		delete(r.spaces, s.id)
		r.taskOf[e.TID] = e.TID
		if r.SharedSpace {
			// later tasks join the new image
			r.spaces[e.TID] = newSpace(e.TID, e.TID)
		}
	case CallExit:
		if e.TID == s.leader || e.TID == 0 && s.leader == 0 {
			clear(r.spaceCache[:])
			r.end(s, "exit")
			delete(r.spaces, s.id)
		}
	}
}

// mmap replays a successful mmap: what was under it is gone, the new mapping
// is outstanding.
func (r *Replay) mmap(s *space, e *Event) {
	start := e.Ret
	n := pageUp(e.Len)
	r.remove(s, start, start+n, e)
	m := r.newMapping()
	*m = Mapping{Start: start, End: start + n, Space: s.id, TID: e.TID, Comm: e.Comm, Prot: e.Prot, FlagsText: e.FlagsText,
		madeKey: e.DoneKey, Anonymous: e.Flags&FlagAnonymous != 0 || e.FD < 0, FD: e.FD, Path: e.Path, Time: e.Time, HasTime: e.HasTime, Line: e.Line, Frames: e.Frames}
	r.insert(s, m, e)
	r.Stats.MappedBytes += n
}

// munmap replays a successful munmap; bytes it names that no traced call
// mapped are counted as pre-existing.
func (r *Replay) munmap(s *space, e *Event) {
	n := pageUp(e.Len)
	got, newer := r.remove(s, e.Addr, e.Addr+n, e)
	r.Stats.UnmappedBytes += got
	if got+newer < n {
		r.Stats.PreexistingOps++
		r.Stats.PreexistingBytes += n - got - newer
	}
}

func (r *Replay) insert(s *space, m *Mapping, e *Event) {
	s.tree.set(m.Start, m)
	r.mapped += m.Len()
	if r.mapped > r.Stats.PeakBytes {
		r.Stats.PeakBytes = r.mapped
		r.Stats.PeakEvent = r.Stats.Events
		r.Stats.PeakTime = e.Time
	}
}

// overlapping returns the mappings intersecting [lo, hi), in address order,
// in r's scratch slice (valid until the next call). One descent of the tree
// finds them: this runs for every mmap, munmap, mremap and madvise.
func (r *Replay) overlapping(s *space, lo, hi uint64) []*Mapping {
	out := r.scratch[:0]
	c := s.tree.seek(lo)
	at := c // before valid moves c on from the end of its leaf
	// The one before may reach into the range; none can when a mapping
	// starts at lo, as mappings do not overlap.
	if !c.valid() || c.key() > lo {
		if m, ok := at.before(); ok && m.End > lo {
			out = append(out, m)
		}
	}
	for ok := c.valid(); ok && c.key() < hi; ok = c.next() {
		out = append(out, c.value())
	}
	r.scratch = out[:0]
	return out
}

// remove cuts [lo, hi) out of the space, splitting mappings that straddle
// it, and returns how many bytes were mapped there.
// Mappings made by calls that completed after enterKey are left alone: the
// call was already in the kernel, so what it unmapped was there before them
// (a thread's munmap frees a range that another thread's mmap, finishing
// first in the trace, then reused).
func (r *Replay) remove(s *space, lo, hi uint64, e *Event) (removed, newer uint64) {
	for _, m := range r.overlapping(s, lo, hi) {
		if madeDuring(m, e) {
			newer += min(m.End, hi) - max(m.Start, lo)
			continue
		}
		cut := min(m.End, hi) - max(m.Start, lo)
		removed += cut
		if r.handedOut {
			r.cutCopying(s, m, lo, hi)
		} else {
			r.cutInPlace(s, m, lo, hi)
		}
		r.mapped -= cut
	}
	return removed, newer
}

// cutCopying cuts [lo, hi) out of m, which overlaps it, leaving m as it
// was: what remains of it is new mappings. Once Outstanding has handed
// mappings out, they must not change under their holder.
func (r *Replay) cutCopying(s *space, m *Mapping, lo, hi uint64) {
	s.tree.delete(m.Start)
	if m.Start < lo {
		left := *m
		left.End = lo
		left.ReleasedBytes = min(left.ReleasedBytes, left.Len())
		s.tree.set(left.Start, &left)
	}
	if m.End > hi {
		right := *m
		right.Start = hi
		right.ReleasedBytes = min(right.ReleasedBytes, right.Len())
		s.tree.set(right.Start, &right)
	}
}

// cutInPlace cuts [lo, hi) out of m, which overlaps it: m itself keeps what
// remains (a new mapping takes the right part of a hole), or, gone
// entirely, is kept for the next mmap. Most munmaps free a whole mapping,
// so the replay allocates little once the trace's churn is under way.
func (r *Replay) cutInPlace(s *space, m *Mapping, lo, hi uint64) {
	switch {
	case m.Start < lo && m.End > hi:
		right := r.newMapping()
		*right = *m
		right.Start = hi
		right.ReleasedBytes = min(right.ReleasedBytes, right.Len())
		s.tree.set(hi, right)
		m.End = lo
		m.ReleasedBytes = min(m.ReleasedBytes, m.Len())
	case m.Start < lo:
		m.End = lo // its key, the start, is unchanged
		m.ReleasedBytes = min(m.ReleasedBytes, m.Len())
	case m.End > hi:
		s.tree.delete(m.Start)
		m.Start = hi
		m.ReleasedBytes = min(m.ReleasedBytes, m.Len())
		s.tree.set(hi, m)
	default:
		s.tree.delete(m.Start)
		if len(r.free) < maxFree {
			*m = Mapping{} // drop what it points to
			r.free = append(r.free, m)
		}
	}
}

// maxFree bounds the unmapped Mappings kept for reuse.
const maxFree = 4096

// newMapping returns a Mapping to fill in: one an earlier munmap freed, or
// a new one.
func (r *Replay) newMapping() *Mapping {
	if n := len(r.free); n > 0 {
		m := r.free[n-1]
		r.free = r.free[:n-1]
		return m
	}
	return new(Mapping)
}

func (r *Replay) release(s *space, lo, hi uint64, e *Event) {
	ms := r.overlapping(s, lo, hi)
	var seen uint64
	for _, m := range ms {
		if madeDuring(m, e) {
			continue
		}
		n := min(m.End, hi) - max(m.Start, lo)
		seen += n
		m.ReleasedBytes = min(m.ReleasedBytes+n, m.Len())
	}
	if seen < hi-lo {
		r.Stats.PreexistingOps++
		r.Stats.PreexistingBytes += hi - lo - seen
	}
}

func (r *Replay) mremap(s *space, e *Event) {
	oldLo, oldHi := e.Addr, e.Addr+pageUp(e.Len)
	newLo, newHi := e.Ret, e.Ret+pageUp(e.NewLen)
	var origin *Mapping
	for _, m := range r.overlapping(s, oldLo, oldHi) {
		if m.Start <= oldLo && oldLo < m.End {
			c := *m
			origin = &c
		}
	}
	if origin == nil {
		r.Stats.PreexistingOps++
		r.Stats.PreexistingBytes += oldHi - oldLo
		origin = &Mapping{TID: e.TID, Comm: e.Comm, Anonymous: true, FD: -1, Time: e.Time, HasTime: e.HasTime, Line: e.Line, Frames: e.Frames}
	}
	if e.Flags&FlagDontUnmap == 0 {
		got, _ := r.remove(s, oldLo, oldHi, e)
		r.Stats.UnmappedBytes += got
	}
	r.remove(s, newLo, newHi, e)
	m := *origin
	m.Start, m.End, m.Space, m.Grown, m.madeKey = newLo, newHi, s.id, true, e.DoneKey
	m.ReleasedBytes = 0
	r.insert(s, &m, e)
	r.Stats.MappedBytes += newHi - newLo
}

// protect replays mprotect. Made writable, the parts of the range no
// traced mapping covers were reserved before the trace and are committed
// now: they become mappings of their own, made by the mprotect's stack.
// Made inaccessible, committed memory is given back. Other changes of
// protection (guard pages, RELRO, code made executable) move nothing.
func (r *Replay) protect(s *space, e *Event) {
	lo, hi := e.Addr, e.Addr+pageUp(e.Len)
	switch {
	case strings.Contains(e.Prot, "WRITE"):
		var gaps [][2]uint64
		at := lo
		for _, m := range r.overlapping(s, lo, hi) {
			if m.Start > at {
				gaps = append(gaps, [2]uint64{at, m.Start})
			}
			at = max(at, m.End)
		}
		if at < hi {
			gaps = append(gaps, [2]uint64{at, hi})
		}
		for _, g := range gaps {
			r.Stats.CommittedBytes += g[1] - g[0]
			// A heap grows page by page: the commit that continues the
			// previous one by the same stack extends it.
			if prev := r.overlapping(s, g[0]-1, g[0]); len(prev) == 1 && prev[0].Committed && prev[0].End == g[0] &&
				prev[0].TID == e.TID && slices.Equal(prev[0].Frames, e.Frames) {
				p := prev[0]
				s.tree.delete(p.Start)
				r.mapped -= p.Len()
				p.End = g[1]
				r.insert(s, p, e)
				continue
			}
			m := &Mapping{Start: g[0], End: g[1], Space: s.id, TID: e.TID, Comm: e.Comm, Prot: e.Prot, FlagsText: "(mprotect)",
				madeKey: e.DoneKey, Anonymous: true, FD: -1, Time: e.Time, HasTime: e.HasTime, Line: e.Line, Frames: e.Frames, Committed: true}
			r.insert(s, m, e)
		}
	case e.Prot == "NONE" || e.Prot == "0":
		var committed [][2]uint64
		for _, m := range r.overlapping(s, lo, hi) {
			if m.Committed && !madeDuring(m, e) {
				committed = append(committed, [2]uint64{max(m.Start, lo), min(m.End, hi)})
			}
		}
		for _, c := range committed {
			got, _ := r.remove(s, c[0], c[1], e)
			r.Stats.DecommittedBytes += got
		}
	}
}

// brk tracks the heap's extent: brk(NULL) reports the start, a successful
// brk(x) returns x; a failed one returns the old break.
func (r *Replay) brk(s *space, e *Event) {
	if e.Addr == 0 {
		if s.brkStart == 0 {
			s.brkStart, s.brkEnd = e.Ret, e.Ret
		}
		return
	}
	if e.Ret != e.Addr {
		r.Stats.Failed++
		return
	}
	if s.brkStart == 0 {
		s.brkStart = e.Ret
	}
	s.brkEnd = e.Ret
}

// end closes a space: what is still mapped was never unmapped by the program.
func (r *Replay) end(s *space, how string) {
	s.tree.scan(func(m *Mapping) {
		m.EndedBy = how
		r.ended = append(r.ended, m)
		r.mapped -= m.Len()
	})
	if s.brkEnd > s.brkStart {
		r.Stats.BrkBytes += s.brkEnd - s.brkStart
	}
}

func (r *Replay) sample(e *Event) {
	if r.Stats.Events%r.stride != 0 {
		return
	}
	r.timeline = append(r.timeline, Point{Event: r.Stats.Events, Time: e.Time, Bytes: r.mapped})
	if len(r.timeline) >= maxTimeline {
		// Keep every other point and sample half as often: a bounded
		// series whatever the trace's length.
		kept := r.timeline[:0]
		for i, p := range r.timeline {
			if i%2 == 1 {
				kept = append(kept, p)
			}
		}
		r.timeline = kept
		r.stride *= 2
	}
}

// Outstanding returns every mapping made in the trace and never unmapped:
// still mapped at the end, or alive when its process exited or exec'd. They
// are in space, then address order.
func (r *Replay) Outstanding() []*Mapping {
	r.handedOut, r.free = true, nil
	out := append([]*Mapping(nil), r.ended...)
	ids := make([]int, 0, len(r.spaces))
	for id := range r.spaces {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		s := r.spaces[id]
		s.tree.scan(func(m *Mapping) { out = append(out, m) })
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Space != out[j].Space {
			return out[i].Space < out[j].Space
		}
		return out[i].Start < out[j].Start
	})
	return out
}

// LiveBrkBytes is the heap extent of spaces still alive at the end.
func (r *Replay) LiveBrkBytes() uint64 {
	var n uint64
	for _, s := range r.spaces {
		if s.brkEnd > s.brkStart {
			n += s.brkEnd - s.brkStart
		}
	}
	return n
}

// Timeline returns the mapped-bytes series, at most 512 points.
func (r *Replay) Timeline() []Point { return r.timeline }

// Spaces is how many address spaces the trace showed.
func (r *Replay) Spaces() []int {
	seen := map[int]bool{}
	for _, id := range r.taskOf {
		seen[id] = true
	}
	out := make([]int, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Ints(out)
	return out
}
