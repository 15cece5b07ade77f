package report

import (
	"fmt"
	"io"
	"strconv"

	"github.com/memdiag/memdiag/jmx"
)

// JMXSchema versions the JSON of `memdiag jmx`.
const JMXSchema = "memdiag.jmx/v1"

// WriteJMX renders what the JVM accounts for in format f.
func WriteJMX(w io.Writer, f Format, m *jmx.JVMMemory, s Style) error {
	switch f {
	case FormatJSON:
		return WriteJSON(w, jmxDocument(m))
	}
	return writeTables(w, f, jmxTables(m), s)
}

func optMax(p *uint64) string {
	if p == nil {
		return "-"
	}
	return Bytes(*p)
}

func jmxTables(m *jmx.JVMMemory) []*Table {
	title := "memdiag jmx"
	if m.PID != 0 {
		title = fmt.Sprintf("memdiag jmx: process %d", m.PID)
	}
	if m.Version != "" {
		title += " — " + m.Version
	}
	mem := &Table{
		Title:   title,
		Columns: []Column{{Header: "AREA"}, {Header: "USED", Align: Right}, {Header: "COMMITTED", Align: Right}, {Header: "MAX", Align: Right}, {Header: "SOURCE"}},
	}
	for _, u := range []struct {
		name string
		u    jmx.Usage
	}{{"heap", m.Heap}, {"non-heap", m.NonHeap}} {
		if u.u.Known {
			mem.AddRow(u.name, Bytes(u.u.UsedBytes), Bytes(u.u.CommittedBytes), optMax(u.u.MaxBytes), u.u.Source)
		}
	}
	for _, p := range m.Pools {
		mem.AddRow("  "+p.Name+" ("+p.Type+")", Bytes(p.UsedBytes), Bytes(p.CommittedBytes), optMax(p.MaxBytes), p.Source)
	}
	for _, b := range m.BufferPools {
		mem.AddRow("  buffers: "+b.Name+" ("+strconv.FormatUint(b.Count, 10)+")", Bytes(b.UsedBytes), Bytes(b.CapacityBytes), "-", b.Source)
	}
	if m.GC != "" {
		mem.Notes = append(mem.Notes, "GC: "+m.GC)
	}
	if m.HeapRange != nil {
		mem.Notes = append(mem.Notes, fmt.Sprintf("Java heap reserved at [%#x, %#x)", m.HeapRange.Start, m.HeapRange.End))
	}
	if v, ok := m.Flags["MaxDirectMemorySize"]; ok {
		mem.Notes = append(mem.Notes, "MaxDirectMemorySize="+v)
	}
	for _, n := range m.Notes {
		mem.Notes = append(mem.Notes, "note: "+n)
	}
	tables := []*Table{mem}
	if m.NMT != nil {
		nmt := &Table{
			Title: fmt.Sprintf("native memory tracking: reserved %s, committed %s", Bytes(m.NMT.ReservedBytes), Bytes(m.NMT.CommittedBytes)),
			Columns: []Column{{Header: "CATEGORY"}, {Header: "RESERVED", Align: Right}, {Header: "COMMITTED", Align: Right},
				{Header: "MALLOC", Align: Right}, {Header: "MMAP COMMITTED", Align: Right}},
		}
		for _, c := range m.NMT.Categories {
			nmt.AddRow(c.Name, Bytes(c.ReservedBytes), Bytes(c.CommittedBytes), Bytes(c.MallocBytes), Bytes(c.MmapCommittedBytes))
		}
		tables = append(tables, nmt)
	}
	return tables
}

type usageJSON struct {
	UsedBytes      uint64  `json:"used_bytes"`
	CommittedBytes uint64  `json:"committed_bytes"`
	MaxBytes       *uint64 `json:"max_bytes,omitempty"`
	Source         string  `json:"source"`
}

type poolJSON struct {
	Name           string  `json:"name"`
	Type           string  `json:"type"`
	UsedBytes      uint64  `json:"used_bytes"`
	CommittedBytes uint64  `json:"committed_bytes"`
	MaxBytes       *uint64 `json:"max_bytes,omitempty"`
	Source         string  `json:"source"`
}

type bufferPoolJSON struct {
	Name          string `json:"name"`
	Count         uint64 `json:"count"`
	UsedBytes     uint64 `json:"used_bytes"`
	CapacityBytes uint64 `json:"capacity_bytes"`
	Source        string `json:"source"`
}

type nmtCategoryJSON struct {
	Name                string `json:"name"`
	ReservedBytes       uint64 `json:"reserved_bytes"`
	CommittedBytes      uint64 `json:"committed_bytes"`
	MallocBytes         uint64 `json:"malloc_bytes"`
	MallocCount         uint64 `json:"malloc_count"`
	MmapReservedBytes   uint64 `json:"mmap_reserved_bytes"`
	MmapCommittedBytes  uint64 `json:"mmap_committed_bytes"`
	StackCommittedBytes uint64 `json:"stack_committed_bytes"`
	ArenaBytes          uint64 `json:"arena_bytes"`
}

type nmtJSON struct {
	ReservedBytes  uint64            `json:"reserved_bytes"`
	CommittedBytes uint64            `json:"committed_bytes"`
	Categories     []nmtCategoryJSON `json:"categories"`
}

type rangeJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

type jmxDoc struct {
	Schema      string            `json:"schema"`
	PID         int               `json:"pid,omitempty"`
	Version     string            `json:"version,omitempty"`
	GC          string            `json:"gc,omitempty"`
	Sources     []string          `json:"sources"`
	Heap        *usageJSON        `json:"heap,omitempty"`
	NonHeap     *usageJSON        `json:"non_heap,omitempty"`
	Pools       []poolJSON        `json:"pools"`
	BufferPools []bufferPoolJSON  `json:"buffer_pools"`
	NMT         *nmtJSON          `json:"nmt,omitempty"`
	HeapRange   *rangeJSON        `json:"heap_range,omitempty"`
	Flags       map[string]string `json:"flags,omitempty"`
	Notes       []string          `json:"notes"`
}

func usageDoc(u jmx.Usage) *usageJSON {
	if !u.Known {
		return nil
	}
	return &usageJSON{u.UsedBytes, u.CommittedBytes, u.MaxBytes, u.Source}
}

func jmxDocument(m *jmx.JVMMemory) *jmxDoc {
	d := &jmxDoc{Schema: JMXSchema, PID: m.PID, Version: m.Version, GC: m.GC, Sources: append([]string{}, m.Sources...),
		Heap: usageDoc(m.Heap), NonHeap: usageDoc(m.NonHeap), Pools: []poolJSON{}, BufferPools: []bufferPoolJSON{},
		Flags: m.Flags, Notes: append([]string{}, m.Notes...)}
	for _, p := range m.Pools {
		d.Pools = append(d.Pools, poolJSON{p.Name, p.Type, p.UsedBytes, p.CommittedBytes, p.MaxBytes, p.Source})
	}
	for _, b := range m.BufferPools {
		d.BufferPools = append(d.BufferPools, bufferPoolJSON{b.Name, b.Count, b.UsedBytes, b.CapacityBytes, b.Source})
	}
	if m.NMT != nil {
		n := &nmtJSON{ReservedBytes: m.NMT.ReservedBytes, CommittedBytes: m.NMT.CommittedBytes, Categories: []nmtCategoryJSON{}}
		for _, c := range m.NMT.Categories {
			n.Categories = append(n.Categories, nmtCategoryJSON{c.Name, c.ReservedBytes, c.CommittedBytes, c.MallocBytes, c.MallocCount,
				c.MmapReservedBytes, c.MmapCommittedBytes, c.StackCommittedBytes, c.ArenaBytes})
		}
		d.NMT = n
	}
	if m.HeapRange != nil {
		d.HeapRange = &rangeJSON{Hex(m.HeapRange.Start), Hex(m.HeapRange.End)}
	}
	return d
}
