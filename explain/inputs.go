// Package explain joins what memdiag's readers found — smaps, malloc_info,
// the JVM's accounting, a syscall trace — into one attribution of a
// process's RSS, with the evidence for every figure, and compares two of
// them. Attribute is a pure function of Inputs, so a saved snapshot
// explains and diffs exactly as the live process did.
package explain

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/goruntime"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/nodejs"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/pymalloc"
	"github.com/memdiag/memdiag/syscalltrace"
)

// Inputs is the evidence an attribution rests on, in the compact form a
// snapshot stores. Every byte count is what its source reported.
type Inputs struct {
	Source  string `json:"source"`
	PID     int    `json:"pid,omitempty"`
	Command string `json:"command,omitempty"`
	// Classes are the smaps mapping classes with their summed counters.
	Classes []ClassSum `json:"classes"`
	// RSSCheck is smaps_rollup/VmRSS agreement, live only.
	RSSConsistent *bool `json:"rss_consistent,omitempty"`

	// Cgroup is the process's memory cgroup, live only.
	Cgroup *CgroupBrief `json:"cgroup,omitempty"`

	Malloc *MallocEvidence `json:"malloc,omitempty"`
	JVM    *JVMEvidence    `json:"jvm,omitempty"`
	Trace  *TraceEvidence  `json:"trace,omitempty"`
	// Record is a live recording of the allocator (explain --record).
	Record *RecordEvidence `json:"record,omitempty"`
	// Allocator names the allocator whose library the process maps:
	// "jemalloc", "tcmalloc" or "glibc" ("" when none is known).
	Allocator string `json:"allocator,omitempty"`
	// Go is a Go program's own account of its heap (runtime.MemStats).
	Go *goruntime.MemStats `json:"go,omitempty"`
	// Node is a Node.js program's own account of its memory (prom-client's
	// default metrics).
	Node *nodejs.Memory `json:"node,omitempty"`
	// Python is CPython's small-object allocator, its pools read from the
	// process's memory.
	Python *pymalloc.Stats `json:"python,omitempty"`
	Notes  []string        `json:"notes"`
}

// CgroupBrief is what the OOM killer weighs the process against: its
// memory cgroup's usage and limit (0: none).
type CgroupBrief struct {
	Path            string `json:"path"`
	Version         int    `json:"version"`
	UsageBytes      uint64 `json:"usage_bytes"`
	LimitBytes      uint64 `json:"limit_bytes"`
	WorkingSetBytes uint64 `json:"working_set_bytes"`
}

// ClassSum is one pmap class.
type ClassSum struct {
	Class     string `json:"class"`
	Mappings  int    `json:"mappings"`
	SizeBytes uint64 `json:"size_bytes"`
	// ReadWriteBytes is the size of its readable and writable mappings:
	// what an allocator can have made of them (0 in snapshots before
	// 2026-12-03).
	ReadWriteBytes uint64 `json:"rw_size_bytes"`
	RSSBytes       uint64 `json:"rss_bytes"`
	// PSSBytes is the proportional share: shared pages divided among the
	// processes that map them (0 in snapshots before 2026-12-03).
	PSSBytes      uint64 `json:"pss_bytes"`
	SwapBytes     uint64 `json:"swap_bytes"`
	AnonHugeBytes uint64 `json:"anon_huge_pages_bytes"`
}

// MallocEvidence is what the allocator says of its memory: one glibc
// malloc_info snapshot, summed, with its arenas; or jemalloc's or
// tcmalloc's statistics, with the parts of what they keep.
type MallocEvidence struct {
	Source string `json:"source"`
	// Allocator is "glibc" (also when empty: snapshots before it was
	// recorded), "jemalloc" or "tcmalloc".
	Allocator string `json:"allocator,omitempty"`
	// Parts are what a jemalloc or tcmalloc keeps beside what is in use.
	Parts              []PartBrief       `json:"parts,omitempty"`
	SystemCurrentBytes uint64            `json:"system_current_bytes"`
	FreeBytes          uint64            `json:"free_bytes"`
	RetainedFreeBytes  uint64            `json:"retained_free_bytes"`
	InUseBytes         uint64            `json:"in_use_bytes"`
	MmapBytes          uint64            `json:"mmap_bytes"`
	MmapCount          uint64            `json:"mmap_count"`
	Arenas             []ArenaBrief      `json:"arenas"`
	Findings           []finding.Finding `json:"findings"`
}

// PartBrief is one part of what an allocator keeps.
type PartBrief struct {
	Name  string `json:"name"`
	Bytes uint64 `json:"bytes"`
}

// Glibc reports whether the evidence is glibc's malloc_info.
func (m *MallocEvidence) Glibc() bool { return m.Allocator == "" || m.Allocator == "glibc" }

// ArenaBrief is one arena in a snapshot.
type ArenaBrief struct {
	Nr                 int    `json:"nr"`
	SystemCurrentBytes uint64 `json:"system_current_bytes"`
	RetainedFreeBytes  uint64 `json:"retained_free_bytes"`
	InUseBytes         uint64 `json:"in_use_bytes"`
}

// JVMEvidence is what the JVM accounts for.
type JVMEvidence struct {
	Sources            []string `json:"sources"`
	GC                 string   `json:"gc,omitempty"`
	Version            string   `json:"version,omitempty"`
	HeapUsedBytes      uint64   `json:"heap_used_bytes"`
	HeapCommittedBytes uint64   `json:"heap_committed_bytes"`
	HeapMaxBytes       *uint64  `json:"heap_max_bytes,omitempty"`
	HeapRangeKnown     bool     `json:"heap_range_known"`
	// HeapRangeSource names what located the heap: "GC.heap_info", or
	// "VM.native_memory detail" (its committed heap ranges).
	HeapRangeSource   string           `json:"heap_range_source,omitempty"`
	NonHeapCommitted  uint64           `json:"non_heap_committed_bytes"`
	DirectUsedBytes   *uint64          `json:"direct_used_bytes,omitempty"`
	DirectSource      string           `json:"direct_source,omitempty"`
	MaxDirectBytes    *uint64          `json:"max_direct_bytes,omitempty"`
	NMT               []NMTBrief       `json:"nmt,omitempty"`
	Pools             []PoolBrief      `json:"pools"`
	BufferPools       []BufferPoolJSON `json:"buffer_pools"`
	NMTCommittedBytes uint64           `json:"nmt_committed_bytes"`
	NMTReservedBytes  uint64           `json:"nmt_reserved_bytes"`
	HasNMT            bool             `json:"has_nmt"`
	// NMTResidentSource says how the NMT categories' resident bytes were
	// read: "pagemap" (exact) or "smaps, shared by overlap"; empty when
	// NMT gave no committed regions (summary level).
	NMTResidentSource   string `json:"nmt_resident_source,omitempty"`
	HeapUsageFromSource string `json:"heap_source"`
}

// NMTBrief is one NMT category.
type NMTBrief struct {
	Name                string `json:"name"`
	CommittedBytes      uint64 `json:"committed_bytes"`
	MallocBytes         uint64 `json:"malloc_bytes"`
	MmapCommittedBytes  uint64 `json:"mmap_committed_bytes"`
	StackCommittedBytes uint64 `json:"stack_committed_bytes"`
	ArenaBytes          uint64 `json:"arena_bytes"`
	// MmapResidentBytes is the Rss of the category's committed regions,
	// known when NMT ran at detail level and smaps was read with it.
	MmapResidentBytes *uint64 `json:"mmap_resident_bytes,omitempty"`
}

// PoolBrief is one memory pool.
type PoolBrief struct {
	Name           string `json:"name"`
	Type           string `json:"type"`
	UsedBytes      uint64 `json:"used_bytes"`
	CommittedBytes uint64 `json:"committed_bytes"`
}

// BufferPoolJSON is one buffer pool.
type BufferPoolJSON struct {
	Name      string `json:"name"`
	Count     uint64 `json:"count"`
	UsedBytes uint64 `json:"used_bytes"`
	Source    string `json:"source"`
}

// TraceEvidence is the outstanding set of a syscall trace, weighed by smaps.
type TraceEvidence struct {
	Source            string            `json:"source"`
	Count             int               `json:"count"`
	AnonBytes         uint64            `json:"anon_bytes"`
	AnonResidentBytes uint64            `json:"anon_resident_bytes"`
	Groups            []LeakGroup       `json:"groups"`
	Findings          []finding.Finding `json:"findings"`
}

// LeakGroup is one group of outstanding mappings.
type LeakGroup struct {
	Key           string `json:"key"`
	Count         int    `json:"count"`
	Bytes         uint64 `json:"bytes"`
	ResidentBytes uint64 `json:"resident_bytes"`
}

// FromMappings fills the class sums from classified mappings.
func (in *Inputs) FromMappings(ms []pmap.Mapping) {
	sum := pmap.Summarize(ms)
	rw := map[pmap.Class]uint64{}
	for i := range ms {
		if strings.HasPrefix(ms[i].Perms, "rw") {
			rw[ms[i].Class] += ms[i].Len()
		}
	}
	in.Classes = nil
	for _, c := range sum.Classes {
		in.Classes = append(in.Classes, ClassSum{ReadWriteBytes: rw[c.Class],
			Class: string(c.Class), Mappings: c.Mappings, SizeBytes: c.SizeBytes,
			RSSBytes: c.Bytes(pmap.FieldRss), PSSBytes: c.Bytes(pmap.FieldPss), SwapBytes: c.Bytes(pmap.FieldSwap), AnonHugeBytes: c.Bytes(pmap.FieldAnonHugePages),
		})
	}
}

// FromMalloc fills the malloc evidence from an analysed malloc_info.
func (in *Inputs) FromMalloc(s *mallocinfo.Snapshot, source string, findings []finding.Finding) {
	t := s.Totals
	e := &MallocEvidence{Source: source, SystemCurrentBytes: t.SystemCurrentBytes, FreeBytes: t.FreeBytes,
		RetainedFreeBytes: t.RetainedFreeBytes, InUseBytes: t.InUseBytes, MmapBytes: t.MmapBytes, MmapCount: t.MmapCount,
		Findings: append([]finding.Finding{}, findings...)}
	for _, a := range s.Arenas {
		e.Arenas = append(e.Arenas, ArenaBrief{a.Nr, a.SystemCurrentBytes, a.RetainedFreeBytes, a.InUseBytes})
	}
	in.Malloc = e
}

// FromAllocator fills the malloc evidence from a jemalloc's or tcmalloc's
// statistics: in use is what the application holds, retained what the
// allocator keeps resident beside it, current its resident figure.
func (in *Inputs) FromAllocator(s *allocator.Stats, findings []finding.Finding) {
	e := &MallocEvidence{Source: s.Source, Allocator: string(s.Allocator), SystemCurrentBytes: s.ResidentBytes,
		FreeBytes: s.RetainedBytes(), RetainedFreeBytes: s.RetainedBytes(), InUseBytes: s.InUseBytes,
		Findings: append([]finding.Finding{}, findings...)}
	for _, p := range s.Parts {
		if p.Resident {
			e.Parts = append(e.Parts, PartBrief{p.Name, p.Bytes})
		}
	}
	in.Malloc = e
}

// FromJVM fills the JVM evidence.
func (in *Inputs) FromJVM(m *jmx.JVMMemory) {
	heapRange := m.HeapRangeSource()
	e := &JVMEvidence{Sources: append([]string{}, m.Sources...), GC: m.GC, Version: m.Version,
		HeapUsedBytes: m.Heap.UsedBytes, HeapCommittedBytes: m.Heap.CommittedBytes, HeapMaxBytes: m.Heap.MaxBytes,
		HeapRangeKnown: heapRange != "", HeapRangeSource: heapRange,
		NonHeapCommitted: m.NonHeap.CommittedBytes, HeapUsageFromSource: m.Heap.Source,
		Pools: []PoolBrief{}, BufferPools: []BufferPoolJSON{}}
	if d, ok := m.BufferPool("direct"); ok {
		v := d.UsedBytes
		e.DirectUsedBytes, e.DirectSource = &v, d.Source
	}
	if v, ok := m.Flags["MaxDirectMemorySize"]; ok {
		if n, ok := parseUint(v); ok && n > 0 {
			e.MaxDirectBytes = &n
		}
	}
	if e.MaxDirectBytes == nil && m.Heap.MaxBytes != nil {
		// HotSpot's default MaxDirectMemorySize is the maximum heap size.
		v := *m.Heap.MaxBytes
		e.MaxDirectBytes = &v
	}
	if m.NMT != nil {
		e.HasNMT = true
		e.NMTCommittedBytes, e.NMTReservedBytes = m.NMT.CommittedBytes, m.NMT.ReservedBytes
		for _, c := range m.NMT.Categories {
			e.NMT = append(e.NMT, NMTBrief{Name: c.Name, CommittedBytes: c.CommittedBytes, MallocBytes: c.MallocBytes,
				MmapCommittedBytes: c.MmapCommittedBytes, StackCommittedBytes: c.StackCommittedBytes, ArenaBytes: c.ArenaBytes})
		}
	}
	for _, p := range m.Pools {
		e.Pools = append(e.Pools, PoolBrief{p.Name, p.Type, p.UsedBytes, p.CommittedBytes})
	}
	for _, b := range m.BufferPools {
		e.BufferPools = append(e.BufferPools, BufferPoolJSON{b.Name, b.Count, b.UsedBytes, b.Source})
	}
	in.JVM = e
}

// ErrNMTTooMuch means NMT's regions would take more work to weigh than
// the process's memory can justify: overlapping or absurd ranges.
var ErrNMTTooMuch = errors.New("NMT regions overlap beyond what the mappings hold")

// weighBudget is the work WeighNMT allows beyond four times the resident
// pages: a real detail report weighs each resident page about once.
const weighBudget = 1 << 20

// WeighNMT sets each NMT category's resident bytes from the committed
// regions of a detail report. resident, when not nil, reads the exact
// resident bytes of a range (the live process's pagemap). Without it the
// mappings' Rss is shared out (ms in address order, as smaps lists them):
// the kernel merges adjacent anonymous mappings of one protection, so a
// range lends its mapping's Rss in proportion to its overlap — an estimate
// that a resident neighbour can inflate.
//
// The regions come from the JVM, which the process's user controls: the
// work is bounded (ErrNMTTooMuch past weighBudget overlaps or pages read),
// and mappings with nothing resident are never read.
func (in *Inputs) WeighNMT(regions []jmx.NMTRegion, ms []pmap.Mapping, resident func(start, end uint64) (uint64, error)) error {
	if in.JVM == nil || len(regions) == 0 {
		return nil
	}
	byCategory := map[string]uint64{}
	var residentPages uint64
	for i := range ms {
		residentPages += ms[i].Bytes(pmap.FieldRss) / 4096
	}
	budget := weighBudget + 4*residentPages // pagemap entries and overlaps
	j := 0
	for _, r := range regions {
		for j < len(ms) && ms[j].End <= r.Start {
			j++
		}
		for k := j; k < len(ms) && ms[k].Start < r.End; k++ {
			if budget == 0 {
				return fmt.Errorf("%w: %d regions", ErrNMTTooMuch, len(regions))
			}
			budget--
			lo, hi := max(r.Start, ms[k].Start), min(r.End, ms[k].End)
			if hi <= lo || ms[k].Bytes(pmap.FieldRss) == 0 {
				continue
			}
			if resident == nil {
				byCategory[r.Category] += proportion(ms[k].Bytes(pmap.FieldRss), hi-lo, ms[k].End-ms[k].Start)
				continue
			}
			pages := (hi - lo) / 4096
			if pages > budget {
				return fmt.Errorf("%w: %d regions", ErrNMTTooMuch, len(regions))
			}
			budget -= pages
			n, err := resident(lo, hi)
			if err != nil {
				return err
			}
			byCategory[r.Category] += n
		}
	}
	in.JVM.NMTResidentSource = "smaps, shared by overlap"
	if resident != nil {
		in.JVM.NMTResidentSource = "pagemap"
	}
	for i := range in.JVM.NMT {
		v := byCategory[in.JVM.NMT[i].Name]
		in.JVM.NMT[i].MmapResidentBytes = &v
	}
	return nil
}

// proportion is n × part / whole without overflow; part ≤ whole.
func proportion(n, part, whole uint64) uint64 {
	hi, lo := bits.Mul64(n, part)
	q, _ := bits.Div64(hi, lo, whole)
	return q
}

// FromTrace fills the trace evidence from outstanding mappings joined with
// the current smaps.
func (in *Inputs) FromTrace(source string, out []*syscalltrace.Mapping, resident map[*syscalltrace.Mapping]uint64, groups []syscalltrace.Group, findings []finding.Finding) {
	e := &TraceEvidence{Source: source, Findings: append([]finding.Finding{}, findings...)}
	for _, m := range out {
		if !m.Anonymous || m.EndedBy != "" {
			continue
		}
		e.Count++
		e.AnonBytes += m.Len()
		e.AnonResidentBytes += resident[m]
	}
	for i, g := range groups {
		if i == 10 {
			break
		}
		label := g.Key
		if len(g.Frames) > 0 {
			label = syscalltrace.StackLabel(g.Frames) // the whole stack is in --pprof
		}
		e.Groups = append(e.Groups, LeakGroup{label, g.Count, g.Bytes, g.ResidentBytes})
	}
	in.Trace = e
}

func (in *Inputs) classRSS(classes ...string) uint64 {
	return in.classSum(func(c ClassSum) uint64 { return c.RSSBytes }, classes)
}

// classSum adds up one counter of the named classes.
func (in *Inputs) classSum(counter func(ClassSum) uint64, classes []string) uint64 {
	var n uint64
	for _, c := range in.Classes {
		for _, want := range classes {
			if c.Class == want {
				n += counter(c)
			}
		}
	}
	return n
}

func (in *Inputs) classMappings(class string) int {
	for _, c := range in.Classes {
		if c.Class == class {
			return c.Mappings
		}
	}
	return 0
}

// classPSS is the Pss of the named classes.
func (in *Inputs) classPSS(classes ...string) uint64 {
	return in.classSum(func(c ClassSum) uint64 { return c.PSSBytes }, classes)
}

// totalPSS is Σ Pss, 0 where the input did not give it.
func (in *Inputs) totalPSS() uint64 {
	var n uint64
	for _, c := range in.Classes {
		n += c.PSSBytes
	}
	return n
}

func (in *Inputs) totalRSS() uint64 {
	var n uint64
	for _, c := range in.Classes {
		n += c.RSSBytes
	}
	return n
}

func parseUint(s string) (uint64, bool) {
	var n uint64
	if s == "" {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}
