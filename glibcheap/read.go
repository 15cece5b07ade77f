package glibcheap

import (
	"errors"
	"fmt"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
)

// Reader reads glibc's heap out of live processes.
type Reader struct {
	// Proc is the proc filesystem (its zero value the live one).
	Proc proc.FS
	// DebugDir is where the host keeps debug files by build-id; DebugDir
	// (the package constant) when empty. With NoSymbols none is read.
	DebugDir  string
	NoSymbols bool
	// NoStop reads while the process runs: no thread is stopped, and the
	// figures may be torn by a malloc or free made during the read.
	NoStop bool
	// StopTimeout bounds the wait for every thread to stop;
	// procmem.DefaultStopTimeout when 0.
	StopTimeout time.Duration
	// MaxPause bounds how long the threads stay stopped over all the
	// reads of one capture; DefaultMaxPause when 0. A walk that would
	// take longer (millions of free chunks) is cut short, the threads
	// resume, and the heap is read while the process runs, which the
	// heap's notes say.
	MaxPause time.Duration
	// Deadline, when set, ends a read still walking then, stopped or not,
	// with ErrOutOfTime: a caller reading many processes (top) keeps to
	// its own budget whatever one heap holds.
	Deadline time.Time

	// deadline is when the walk of the current stop must end.
	deadline time.Time
	// hints are where the free chunks were when the process last ran.
	hints *chunkHints
}

// DefaultMaxPause is Reader.MaxPause's zero value: a pause a service
// rides out like a long GC, where a heap of a few million free chunks
// would stop it for seconds; a usual heap's read takes milliseconds.
const DefaultMaxPause = time.Second

// ErrOutOfTime means the read reached Reader.Deadline.
var ErrOutOfTime = errors.New("the heap's read ran out of time")

// errOverBudget means a walk made while the threads were stopped reached
// the pause budget.
var errOverBudget = errors.New("the read would stop the process longer than its pause budget")

// attempts bounds the reads of one capture. An arena whose lock a thread
// held at the instant of the read (inside malloc or free) may have a list
// mid-update; it is read again at the next stop, after the threads ran
// briefly, until every arena has been read with its lock free.
const attempts = 8

// Read reads process pid's heap.
func (rd Reader) Read(pid int) (*Heap, error) {
	p, err := procmem.Open(rd.Proc, pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	maps, err := p.Maps()
	if err != nil {
		return nil, err
	}
	lc, err := findLibc(maps)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	r := newReader(p, maps)
	if err := lc.readVersion(r, p.Dir()); err != nil {
		return nil, rd.gone(p, fmt.Errorf("process %d: %w", pid, err))
	}
	l, err := layoutFor(lc.version)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	lc.readBuildID(r)
	if !rd.NoSymbols {
		// The host's debug file is read now, before any thread is
		// stopped: it is not the process's, and takes milliseconds.
		lc.symbolsOnce(rd.debugDir())
	}
	h, err := rd.readSettled(p, lc, l)
	if err != nil {
		return nil, rd.gone(p, err)
	}
	if err := p.Alive(); err != nil {
		return nil, err
	}
	h.PID = pid
	switch {
	case rd.NoStop:
		h.Notes = append(h.Notes, "read while the process ran (--no-stop): a malloc or free during the read may tear the figures")
	case !h.Stopped:
		h.Notes = append(h.Notes, fmt.Sprintf("read while the process ran: walking its free lists with the threads stopped would have paused them longer than %v, so they were resumed; a malloc or free during the read may tear the figures", rd.maxPause()))
	}
	return h, nil
}

// readSettled reads until every arena has been read with its lock free,
// at most attempts times, keeping each arena's best read.
func (rd Reader) readSettled(p *procmem.Process, lc *libc, l layout) (*Heap, error) {
	best := map[uint64]Arena{}
	var paused procmem.Pause
	var h *Heap
	var err error
	stop := !rd.NoStop
	if stop {
		rd.hints = rd.learnHints(p, lc, l)
	}
	for try := 1; ; try++ {
		var pause procmem.Pause
		read := func() error {
			h, err = rd.readOnce(p, lc, l)
			return err
		}
		if stop {
			rd.deadline = rd.walkDeadline(rd.maxPause() - paused.Duration)
			pause, err = p.Freeze(rd.StopTimeout, read)
		} else {
			rd.deadline = rd.Deadline
			err = read()
		}
		paused.Threads = pause.Threads
		paused.Duration += pause.Duration
		if errors.Is(err, errOverBudget) {
			if !stop || !rd.Deadline.IsZero() && !time.Now().Before(rd.Deadline) {
				return nil, fmt.Errorf("%w (%v)", ErrOutOfTime, err)
			}
			// The pause budget, not the caller's deadline: the threads run
			// again, what the stopped reads settled is lost with it, and
			// the read starts over unstopped.
			stop, best = false, map[uint64]Arena{}
			continue
		}
		if err != nil && (!errors.Is(err, ErrCorrupt) || try == attempts) {
			if !stop && !rd.NoStop {
				err = fmt.Errorf("read with its threads stopped, the heap took longer than the %v pause allowed, and read while the process ran it was mid-update at every try: %w", rd.maxPause(), err)
			}
			return nil, err
		}
		if err == nil && keepBest(h, best) || try == attempts {
			break
		}
		// Let the threads run: whoever holds a lock, or was caught
		// mid-list while the process ran, finishes its call.
		time.Sleep(time.Duration(try) * time.Millisecond)
	}
	if h == nil {
		return nil, err
	}
	h.Stopped, h.Pause = stop, paused
	return h, h.settle()
}

// learnHints walks the heap once while the process runs, within the pause
// budget and the caller's deadline, for where its free chunks are; what it
// read torn or could not finish only makes the hints fewer.
func (rd Reader) learnHints(p *procmem.Process, lc *libc, l layout) *chunkHints {
	hints := &chunkHints{learning: true, byArena: map[uint64][]uint64{}}
	rd.hints = hints
	rd.deadline = rd.walkDeadline(rd.maxPause())
	_, _ = rd.readOnce(p, lc, l)
	hints.learning = false
	return hints
}

// walkDeadline is when a walk allowed budget from now must end: then, or
// at the caller's Deadline if that comes first.
func (rd Reader) walkDeadline(budget time.Duration) time.Time {
	end := time.Now().Add(budget)
	if !rd.Deadline.IsZero() && rd.Deadline.Before(end) {
		return rd.Deadline
	}
	return end
}

func (rd Reader) maxPause() time.Duration {
	if rd.MaxPause > 0 {
		return rd.MaxPause
	}
	return DefaultMaxPause
}

// keepBest puts into h, arena by arena, the best read of each so far, and
// reports whether every arena has now been read with its lock free.
func keepBest(h *Heap, best map[uint64]Arena) (settled bool) {
	settled = true
	for i := range h.Arenas {
		a := &h.Arenas[i]
		if b, ok := best[a.Address]; ok && b.quality() > a.quality() {
			b.Index, b.earlier = a.Index, true
			*a = b
		} else {
			best[a.Address] = *a
		}
		settled = settled && a.quality() == 2
	}
	return settled
}

// settle turns what the reads left unsettled into an error or notes.
func (h *Heap) settle() error {
	var locked, earlier []int
	for i := range h.Arenas {
		a := &h.Arenas[i]
		if a.walkErr != nil {
			return a.walkErr
		}
		if a.Locked {
			locked = append(locked, a.Index)
		}
		if a.earlier {
			earlier = append(earlier, a.Index)
		}
	}
	if len(earlier) > 0 {
		h.Notes = append(h.Notes, fmt.Sprintf("arenas %v are from an earlier stop than the rest: a thread was inside malloc or free in them at the later one", earlier))
	}
	if len(locked) > 0 {
		h.Notes = append(h.Notes, fmt.Sprintf("arenas %v were locked by a thread inside malloc or free at every read: their figures may be off by that one call", locked))
	}
	return nil
}

// gone prefers, to an error of the walk, the news that the process exited.
func (rd Reader) gone(p *procmem.Process, err error) error {
	if alive := p.Alive(); alive != nil {
		return fmt.Errorf("%w (while its heap was being read)", alive)
	}
	return err
}

// readOnce reads the mappings and the heap once. Under Freeze it runs
// with every thread stopped.
func (rd Reader) readOnce(p *procmem.Process, lc *libc, l layout) (*Heap, error) {
	started := time.Now()
	maps, err := p.Maps()
	if err != nil {
		return nil, err
	}
	h, r, err := rd.walk(p, maps, lc, l)
	if err != nil {
		return nil, err
	}
	// A heap too large to walk is not read again: the next stop would
	// cost the process as much.
	for _, a := range h.Arenas {
		if errors.Is(a.walkErr, ErrTooLarge) || errors.Is(a.walkErr, errOverBudget) {
			return nil, a.walkErr
		}
	}
	h.ReadTime, h.Reads, h.ReadBytes = time.Since(started), r.reads, r.bytes
	return h, nil
}

// walk finds main_arena and mp_ and reads every arena.
func (rd Reader) walk(mem Memory, maps []proc.Mapping, lc *libc, l layout) (*Heap, *reader, error) {
	r := newReader(mem, maps)
	r.deadline, r.hints = rd.deadline, rd.hints
	w := &walker{r: r, l: l, heapMax: heapMaxSize}
	mainArena, mp, err := rd.locate(r, lc, l, w)
	if err != nil {
		return nil, r, err
	}
	w.mainArena = mainArena
	params := make([]byte, l.mpSize)
	if err := r.read(params, mp); err != nil {
		return nil, r, fmt.Errorf("%w: reading mp_ at %#x: %v", ErrNotFound, mp, err)
	}
	if l.mpHugePageSize >= 0 {
		if hp := le64(params, l.mpHugePageSize); hp != 0 {
			if hp&(hp-1) != 0 || hp < pageSize || hp > 1<<30 {
				return nil, r, fmt.Errorf("%w: mp_.hp_pagesize is %d, not a huge page size", ErrCorrupt, hp)
			}
			w.heapMax = 4 * hp
		}
	}
	arenas, err := w.arenas()
	if err != nil {
		return nil, r, err
	}
	h := &Heap{
		Version: lc.version, Library: lc.path, Arenas: arenas,
		MmappedChunks: int(le32(params, l.mpNMmaps)), MmappedBytes: le64(params, l.mpMmappedMem),
		Found: lc.found(mainArena, mp),
	}
	return h, r, nil
}

// debugDir is DebugDir unless the Reader names another.
func (rd Reader) debugDir() string {
	if rd.DebugDir == "" {
		return DebugDir
	}
	return rd.DebugDir
}

// locate returns the addresses of main_arena and mp_: from the host's
// debug symbols when they check out, else by their shape in libc's data.
func (rd Reader) locate(r *reader, lc *libc, l layout, w *walker) (mainArena, mp uint64, err error) {
	arenaOK := func(addr uint64) bool { return w.plausibleMain(addr) }
	lc.symbolic = false
	if !rd.NoSymbols {
		if a, m, ok := lc.symbolsOnce(rd.debugDir()); ok && arenaOK(a) {
			lc.symbolic = true
			return a, m, nil
		}
	}
	for _, d := range lc.data {
		if d.Size() > maxLibcRead {
			continue // the process's to make that large: not read
		}
		data, err := r.bulk(d.Start, d.Size())
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s's data: %w", lc.path, err)
		}
		if a, ok := findMainArena(data, d.Start, l, arenaOK); ok {
			mainArena = a
			break
		}
	}
	if mainArena == 0 {
		return 0, 0, fmt.Errorf("%w: no malloc_state in %s's data has the shape of main_arena (glibc %s): glibc's malloc may be unused (another allocator interposed, or no malloc yet), or this build lays it out otherwise (--gdb asks the process's own malloc_info)", ErrNotFound, lc.path, lc.version)
	}
	// mp_.sbrk_base is the start of the brk heap: the mapping that holds
	// the main arena's top chunk.
	top, _ := r.u64(mainArena + uint64(l.top))
	heap, ok := r.mapping(top)
	if !ok {
		return 0, 0, fmt.Errorf("%w: the main arena's top chunk %#x is in no mapping", ErrNotFound, top)
	}
	for _, d := range lc.data {
		if d.Size() > maxLibcRead {
			continue // the process's to make that large: not read
		}
		data, err := r.bulk(d.Start, d.Size())
		if err != nil {
			return 0, 0, fmt.Errorf("reading %s's data: %w", lc.path, err)
		}
		if m, ok := findParams(data, d.Start, l, heap.Start); ok {
			return mainArena, m, nil
		}
	}
	return 0, 0, fmt.Errorf("%w: no mp_ in %s's data has sbrk_base %#x, the start of the heap holding the main arena's top chunk", ErrNotFound, lc.path, heap.Start)
}

// plausibleMain checks a main_arena candidate: a top chunk in readable,
// writable memory, a next arena that is itself or at the start of a heap,
// and sizes in order.
func (w *walker) plausibleMain(addr uint64) bool {
	l := w.l
	state := make([]byte, l.stateSize)
	if w.r.read(state, addr) != nil {
		return false
	}
	top, next := le64(state, l.top), le64(state, l.next)
	sys, maxSys := le64(state, l.systemMem), le64(state, l.maxSystemMem)
	m, ok := w.r.mapping(top)
	if !ok || !m.Writable() || top%malignment != 0 || sys > maxSys {
		return false
	}
	if next == addr {
		return true
	}
	if _, ok := w.r.mapping(next); !ok {
		return false
	}
	return (next-uint64(l.heapInfoSize))%w.heapMax == 0 || (next-uint64(l.heapInfoSize))%heapMaxSize == 0
}

func (lc *libc) found(mainArena, mp uint64) string {
	how := "by the shape of their fields in libc's data"
	if lc.symbolic {
		how = fmt.Sprintf("from the debug symbols for libc's build-id %s", lc.buildID)
	}
	return fmt.Sprintf("main_arena at %#x and mp_ at %#x in %s (glibc %s), %s", mainArena, mp, lc.path, lc.version, how)
}
