package jmx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
	"github.com/memdiag/memdiag/pmap"
)

// Usage is a memory figure as the JVM reports it: MemoryUsage's used,
// committed, and max when defined.
type Usage struct {
	UsedBytes      uint64
	CommittedBytes uint64
	MaxBytes       *uint64 // nil: undefined (-1 in JMX) or unknown
	Source         string  // where the figures came from
	Known          bool
}

// Pool is a memory pool: "G1 Old Gen", "Metaspace", "CodeHeap 'profiled nmethods'".
type Pool struct {
	Name           string
	Type           string // "heap" or "non-heap"
	UsedBytes      uint64
	CommittedBytes uint64
	MaxBytes       *uint64
	Source         string
}

// BufferPool is a java.nio buffer pool: "direct", "mapped".
type BufferPool struct {
	Name          string
	Count         uint64
	UsedBytes     uint64
	CapacityBytes uint64
	Source        string
}

// Range is an address range [Start, End).
type Range struct{ Start, End uint64 }

// JVMMemory is everything the JVM accounts for, from every source read.
type JVMMemory struct {
	PID         int
	Version     string
	GC          string
	Sources     []string
	Heap        Usage
	NonHeap     Usage
	Pools       []Pool
	BufferPools []BufferPool
	NMT         *NMT
	HeapInfo    *HeapInfo
	// HeapRange is the reserved Java heap, from GC.heap_info.
	HeapRange *Range
	// Flags are the JVM's non-default flags from VM.flags ("MaxHeapSize",
	// "MaxDirectMemorySize", …), values as printed.
	Flags map[string]string
	// Notes say what could not be read and how to get it.
	Notes []string
}

// ReadOptions choose the sources of a live read.
type ReadOptions struct {
	// Proc is the proc filesystem.
	Proc proc.FS
	// NoAttach forbids the attach mechanism: hsperfdata only.
	NoAttach bool
	Timeout  time.Duration
	// Notify, when set, is told of waits longer than a second.
	Notify func(msg string)
}

// ReadPID reads a live HotSpot JVM: its hsperfdata file first (no
// disturbance at all), then — unless forbidden — GC.heap_info,
// VM.native_memory summary and VM.version through the attach socket.
func ReadPID(ctx context.Context, pid int, o ReadOptions) (*JVMMemory, error) {
	a := Attacher{Proc: o.Proc, Timeout: o.Timeout, Notify: o.Notify}
	if o.Timeout > 0 {
		// One deadline for the whole read, not one per command.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	t, err := a.target(pid)
	if err != nil {
		return nil, err
	}
	m := &JVMMemory{PID: pid}
	root, err := targetfs.OpenRoot(t.proc)
	if err != nil {
		return nil, procError(pid, "reaching its files", err)
	}
	var counters map[string]PerfCounter
	var path string
	// Read as the JVM's user: what it cannot read is not its own.
	err = targetfs.AsUserContext(ctx, t.cred(), func() (err error) {
		counters, path, err = readHsperfOf(root, t.ids)
		return err
	}, func() { root.Close() })
	if err != nil {
		m.Notes = append(m.Notes, "hsperfdata: "+err.Error())
	} else {
		hsperfMemory(counters, m)
		m.Sources = append(m.Sources, "hsperfdata "+path)
	}
	if o.NoAttach {
		m.Notes = append(m.Notes, "attach forbidden (--no-attach): no heap range, no NMT")
		return m, nil
	}
	if out, err := a.run(ctx, t, "GC.heap_info"); err != nil {
		m.Notes = append(m.Notes, "attach: "+err.Error())
		return m, nil // the rest would fail the same way
	} else if hi, err := ParseHeapInfo(strings.NewReader(out), fmt.Sprintf("GC.heap_info of %d", pid)); err != nil {
		m.Notes = append(m.Notes, err.Error())
	} else {
		m.ApplyHeapInfo(hi, "attach GC.heap_info")
	}
	// Detail, when the JVM tracks at that level, adds where each committed
	// range lies, which smaps turns into resident bytes.
	nmtCommand := "VM.native_memory detail"
	out, err := a.run(ctx, t, nmtCommand)
	if err == nil && strings.Contains(out, "Detail tracking is not enabled") {
		nmtCommand = "VM.native_memory summary"
		out, err = a.run(ctx, t, nmtCommand)
	}
	if err != nil {
		m.Notes = append(m.Notes, "attach: "+err.Error())
	} else if n, err := ParseNMT(strings.NewReader(out), fmt.Sprintf("%s of %d", nmtCommand, pid)); err != nil {
		if errors.Is(err, ErrNMTDisabled) {
			m.Notes = append(m.Notes, "NMT is off: restart the JVM with -XX:NativeMemoryTracking=summary (≈ 1–2 % overhead) to see its native memory by category")
		} else {
			m.Notes = append(m.Notes, err.Error())
		}
	} else {
		m.NMT = n
		m.Sources = append(m.Sources, "attach "+nmtCommand)
		m.AddNMTDirect()
	}
	if out, err := a.run(ctx, t, "VM.flags"); err == nil {
		m.Flags = parseVMFlags(out)
	}
	if out, err := a.run(ctx, t, "VM.version"); err == nil {
		if first, _, _ := strings.Cut(strings.TrimSpace(out), "\n"); first != "" {
			m.Version = first
		}
	}
	return m, nil
}

// ApplyHeapInfo takes GC.heap_info's figures: fresher than hsperfdata's,
// which are updated at collections.
func (m *JVMMemory) ApplyHeapInfo(hi *HeapInfo, source string) {
	m.HeapInfo = hi
	m.GC = hi.GC
	m.Heap.UsedBytes, m.Heap.CommittedBytes, m.Heap.Source, m.Heap.Known = hi.UsedBytes, hi.CommittedBytes, source, true
	if hi.MaxBytes > 0 {
		v := hi.MaxBytes
		m.Heap.MaxBytes = &v
	}
	// GC.heap_info is read now; hsperfdata's metaspace is as of the last
	// collection: the fresher figure wins over it (not over a JMX source).
	if hi.MetaspaceCommittedBytes > 0 && (!m.NonHeap.Known || strings.HasPrefix(m.NonHeap.Source, "hsperfdata")) {
		m.NonHeap = Usage{UsedBytes: hi.MetaspaceUsedBytes, CommittedBytes: hi.MetaspaceCommittedBytes,
			Source: source + " (metaspace only)", Known: true}
		m.addCompiledCode()
	}
	if hi.End > hi.Start {
		m.HeapRange = &Range{hi.Start, hi.End}
		if m.Heap.MaxBytes == nil {
			v := hi.End - hi.Start
			m.Heap.MaxBytes = &v
		}
	}
	m.Sources = append(m.Sources, source)
}

// The pmap classes of JVM memory, known from the JVM's own accounting.
const (
	// ClassJVMHeap holds the Java heap.
	ClassJVMHeap pmap.Class = "jvm-heap"
	// ClassJVMNative is anonymous memory NMT says the JVM committed
	// outside the heap: code cache, metaspace, class space, GC structures.
	ClassJVMNative pmap.Class = "jvm-native"
)

// HeapRangeSource names what locates the Java heap's addresses:
// "GC.heap_info", "VM.native_memory detail" (its committed heap ranges), or
// "" when nothing does.
func (m *JVMMemory) HeapRangeSource() string {
	if m == nil {
		return ""
	}
	if m.HeapRange != nil {
		return "GC.heap_info"
	}
	if m.NMT != nil {
		for _, r := range m.NMT.Regions {
			if r.Category == "Java Heap" {
				return "VM.native_memory detail"
			}
		}
	}
	return ""
}

// Regions returns the address ranges this evidence identifies, for
// pmap.Classify: the reserved Java heap from GC.heap_info, else the
// committed heap ranges of an NMT detail report; and the detail report's
// other committed ranges, except thread stacks (pmap finds those itself)
// and the CDS archive (file-backed).
func (m *JVMMemory) Regions() []pmap.Region {
	if m == nil {
		return nil
	}
	var rs []pmap.Region
	if m.HeapRange != nil {
		rs = append(rs, pmap.Region{
			Start: m.HeapRange.Start, End: m.HeapRange.End, Class: ClassJVMHeap,
			Reason: fmt.Sprintf("inside the Java heap [%#x, %#x) that GC.heap_info reports (%s)", m.HeapRange.Start, m.HeapRange.End, m.GC),
		})
	}
	if m.NMT == nil {
		return rs
	}
	for _, r := range m.NMT.Regions {
		switch r.Category {
		case "Java Heap":
			if m.HeapRange == nil {
				rs = append(rs, pmap.Region{Start: r.Start, End: r.End, Class: ClassJVMHeap,
					Reason: fmt.Sprintf("committed to the Java heap [%#x, %#x) in VM.native_memory detail", r.Start, r.End)})
			}
		case "Thread", "Shared class space":
		default:
			rs = append(rs, pmap.Region{Start: r.Start, End: r.End, Class: ClassJVMNative,
				Reason: fmt.Sprintf("committed to %s [%#x, %#x) in VM.native_memory detail", r.Category, r.Start, r.End)})
		}
	}
	return rs
}

// Merge adds what another source read: figures this one lacks, and every
// pool and buffer pool with its source.
func (m *JVMMemory) Merge(o *JVMMemory) {
	if o == nil {
		return
	}
	m.Sources = append(m.Sources, o.Sources...)
	if !m.Heap.Known {
		m.Heap = o.Heap
	}
	if !m.NonHeap.Known {
		m.NonHeap = o.NonHeap
	}
	m.Pools = append(m.Pools, o.Pools...)
	m.BufferPools = append(m.BufferPools, o.BufferPools...)
	if m.NMT == nil {
		m.NMT = o.NMT
	}
	if m.HeapInfo == nil {
		m.HeapInfo, m.HeapRange = o.HeapInfo, o.HeapRange
	}
	if m.Version == "" {
		m.Version = o.Version
	}
	if m.GC == "" {
		m.GC = o.GC
	}
	m.Notes = append(m.Notes, o.Notes...)
}

// BufferPool returns the named buffer pool ("direct", "mapped").
func (m *JVMMemory) BufferPool(name string) (BufferPool, bool) {
	for _, b := range m.BufferPools {
		if b.Name == name {
			return b, true
		}
	}
	return BufferPool{}, false
}

// parseVMFlags reads `jcmd PID VM.flags`: "-XX:Name=value" and "-XX:+Name"
// words, after jcmd's "PID:" line.
func parseVMFlags(out string) map[string]string {
	flags := map[string]string{}
	for _, w := range strings.Fields(out) {
		w, ok := strings.CutPrefix(w, "-XX:")
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(w, "+"):
			flags[w[1:]] = "true"
		case strings.HasPrefix(w, "-"):
			flags[w[1:]] = "false"
		default:
			if k, v, ok := strings.Cut(w, "="); ok {
				flags[k] = v
			}
		}
	}
	return flags
}

// AddNMTDirect estimates the direct buffers from NMT when no JMX source gave
// the buffer pools: direct ByteBuffers are malloc'd by Unsafe.allocateMemory,
// which NMT counts under "Other" — with any other Unsafe allocation, so it is
// an upper bound.
func (m *JVMMemory) AddNMTDirect() {
	if _, ok := m.BufferPool("direct"); ok || m.NMT == nil {
		return
	}
	if other, ok := m.NMT.Category("Other"); ok {
		m.BufferPools = append(m.BufferPools, BufferPool{Name: "direct", Count: other.MallocCount, UsedBytes: other.MallocBytes, CapacityBytes: other.MallocBytes,
			Source: "NMT Other (Unsafe.allocateMemory: direct buffers and any other Unsafe allocation)"})
	}
}
