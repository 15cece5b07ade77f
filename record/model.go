// Package record records a live process's allocations with eBPF —
// uprobes on the allocator's functions (malloc, free, …) in the libc and
// the allocators it maps, and the kernel's mmap, munmap, mremap and brk —
// and says what is outstanding at the end, by call stack. The library
// takes a context and returns a typed Result; it prints nothing.
package record

import (
	"math"
	"sort"
	"time"

	"github.com/memdiag/memdiag/syscalltrace"
)

// allocFn is an allocator function, numbered as the BPF program numbers it.
type allocFn uint8

// The functions probed.
const (
	fnMalloc allocFn = iota + 1
	fnCalloc
	fnRealloc
	fnReallocarray
	fnPosixMemalign
	fnAlignedAlloc
	fnMemalign
	fnValloc
	fnPvalloc
	fnFree
)

// fnNames are the symbols probed, by allocFn.
var fnNames = [...]string{
	fnMalloc: "malloc", fnCalloc: "calloc", fnRealloc: "realloc", fnReallocarray: "reallocarray",
	fnPosixMemalign: "posix_memalign", fnAlignedAlloc: "aligned_alloc", fnMemalign: "memalign",
	fnValloc: "valloc", fnPvalloc: "pvalloc", fnFree: "free",
}

func (f allocFn) String() string {
	if int(f) < len(fnNames) && fnNames[f] != "" {
		return fnNames[f]
	}
	return "unknown"
}

// Stack is the allocations of one call stack.
type Stack struct {
	// PID is the process that made the allocations (with FollowForks, a
	// child's stacks are its own).
	PID int
	// ID is the kernel's stack id; below 0, the error that kept the stack
	// from being taken (see Unwound).
	ID     int32
	Frames []syscalltrace.Frame // innermost first: the allocator's caller
	// Unwound says why a stack is missing or short, "" when it is whole.
	Unwound string
	// OutstandingBytes and OutstandingCount are allocated during the
	// recording and not freed by its end (estimates when sampling).
	OutstandingBytes, OutstandingCount uint64
	// SummarisedBytes and SummarisedCount are the part of them dropped
	// from the table past its cap: outstanding when dropped, their later
	// fate not seen.
	SummarisedBytes, SummarisedCount uint64
	// OldestAge is the age at the end of its oldest outstanding allocation.
	OldestAge time.Duration
	// AllocBytes and AllocCount are everything it allocated while recorded.
	AllocBytes, AllocCount uint64
}

// alloc is one outstanding allocation, kept small: a process may have
// millions.
type alloc struct {
	size  uint64
	ts    uint64 // CLOCK_MONOTONIC ns
	stack int32
	fn    allocFn
}

// totals accumulate per stack.
type totals struct {
	allocBytes, allocCount float64
	sumBytes, sumCount     float64 // summarised
	sumOldest              uint64
}

// table is the outstanding allocations, matched alloc to free, with a cap:
// past it the oldest are summarised by stack and forgotten.
type table struct {
	live        map[uint64]alloc
	order       []ordered // allocation order, for dropping the oldest
	head        int
	cap         int
	sampleBytes uint64
	perStack    map[int32]*totals

	allocs, frees, unmatched uint64
	allocBytes               float64
	summarised               uint64
	summarisedBytes          uint64
}

type ordered struct {
	addr, ts uint64
}

func newTable(cap int, sampleBytes uint64) *table {
	return &table{live: map[uint64]alloc{}, cap: cap, sampleBytes: sampleBytes, perStack: map[int32]*totals{}}
}

// weight is what one recorded allocation of size bytes stands for: itself,
// or when sampling one in every sampleBytes bytes, 1/(1-e^(-size/N))
// allocations (the probability that a sample point fell inside it), as
// pprof unsamples tcmalloc's heap profiles.
func weight(size, sampleBytes uint64) float64 {
	if sampleBytes == 0 || size == 0 {
		return 1
	}
	return 1 / (1 - math.Exp(-float64(size)/float64(sampleBytes)))
}

func (t *table) stack(id int32) *totals {
	s := t.perStack[id]
	if s == nil {
		s = &totals{}
		t.perStack[id] = s
	}
	return s
}

// add records an allocation; it returns the addresses dropped past the cap
// (the caller forgets them in the kernel too).
func (t *table) add(addr, size, ts uint64, stack int32, fn allocFn) []uint64 {
	t.allocs++
	w := weight(size, t.sampleBytes)
	t.allocBytes += w * float64(size)
	s := t.stack(stack)
	s.allocBytes += w * float64(size)
	s.allocCount += w
	t.live[addr] = alloc{size: size, ts: ts, stack: stack, fn: fn}
	t.order = append(t.order, ordered{addr, ts})
	if t.cap <= 0 || len(t.live) <= t.cap {
		t.compact()
		return nil
	}
	// Drop a tenth at once, oldest first, so that the cost is paid rarely.
	var dropped []uint64
	for len(t.live) > t.cap-t.cap/10 && t.head < len(t.order) {
		o := t.order[t.head]
		t.head++
		a, ok := t.live[o.addr]
		if !ok || a.ts != o.ts {
			continue // freed since, or the address reused
		}
		delete(t.live, o.addr)
		ws := weight(a.size, t.sampleBytes)
		st := t.stack(a.stack)
		st.sumBytes += ws * float64(a.size)
		st.sumCount += ws
		if st.sumOldest == 0 || a.ts < st.sumOldest {
			st.sumOldest = a.ts
		}
		t.summarised++
		t.summarisedBytes += uint64(ws * float64(a.size))
		dropped = append(dropped, o.addr)
	}
	t.compact()
	return dropped
}

// compact drops the order queue's consumed head and, when most entries are
// stale (freed), rebuilds it from the live set.
func (t *table) compact() {
	if len(t.order) < 1024 || len(t.order) < 4*len(t.live)+t.head {
		return
	}
	kept := t.order[:0]
	for _, o := range t.order[t.head:] {
		if a, ok := t.live[o.addr]; ok && a.ts == o.ts {
			kept = append(kept, o)
		}
	}
	t.order, t.head = kept, 0
}

// free matches a free to its allocation; a free the table does not know
// (its allocation's event was lost) is counted.
func (t *table) free(addr uint64) {
	if _, ok := t.live[addr]; !ok {
		t.unmatched++
		return
	}
	t.frees++
	delete(t.live, addr)
}

// reset forgets every allocation (the process exec'd: its old image's
// memory is gone, its stacks are another program's) and returns the
// addresses that were outstanding.
func (t *table) reset() []uint64 {
	addrs := make([]uint64, 0, len(t.live))
	for a := range t.live {
		addrs = append(addrs, a)
	}
	clear(t.live)
	clear(t.perStack)
	t.order, t.head = nil, 0
	t.allocs, t.frees, t.unmatched, t.allocBytes, t.summarised, t.summarisedBytes = 0, 0, 0, 0, 0, 0
	return addrs
}

// stacks sums the table by stack at now (CLOCK_MONOTONIC ns), largest
// outstanding bytes first; frames are left to the caller.
func (t *table) stacks(now uint64) []Stack {
	type acc struct {
		bytes, count float64
		oldest       uint64
	}
	live := map[int32]*acc{}
	for _, a := range t.live {
		x := live[a.stack]
		if x == nil {
			x = &acc{}
			live[a.stack] = x
		}
		w := weight(a.size, t.sampleBytes)
		x.bytes += w * float64(a.size)
		x.count += w
		if x.oldest == 0 || a.ts < x.oldest {
			x.oldest = a.ts
		}
	}
	out := make([]Stack, 0, len(t.perStack))
	for id, s := range t.perStack {
		st := Stack{ID: id, AllocBytes: round(s.allocBytes), AllocCount: round(s.allocCount),
			SummarisedBytes: round(s.sumBytes), SummarisedCount: round(s.sumCount)}
		oldest := s.sumOldest
		if x := live[id]; x != nil {
			st.OutstandingBytes, st.OutstandingCount = round(x.bytes), round(x.count)
			if oldest == 0 || x.oldest < oldest {
				oldest = x.oldest
			}
		}
		st.OutstandingBytes += st.SummarisedBytes
		st.OutstandingCount += st.SummarisedCount
		if oldest != 0 && now > oldest && st.OutstandingCount > 0 {
			st.OldestAge = time.Duration(now - oldest)
		}
		out = append(out, st)
	}
	sortStacks(out)
	return out
}

// sortStacks orders stacks largest outstanding first, then largest
// allocated, then by process and id: the same order from run to run.
func sortStacks(out []Stack) {
	sort.Slice(out, func(i, j int) bool {
		if out[i].OutstandingBytes != out[j].OutstandingBytes {
			return out[i].OutstandingBytes > out[j].OutstandingBytes
		}
		if out[i].AllocBytes != out[j].AllocBytes {
			return out[i].AllocBytes > out[j].AllocBytes
		}
		if out[i].PID != out[j].PID {
			return out[i].PID < out[j].PID
		}
		return out[i].ID < out[j].ID
	})
}

func round(v float64) uint64 {
	if v <= 0 {
		return 0
	}
	return uint64(v + 0.5)
}
