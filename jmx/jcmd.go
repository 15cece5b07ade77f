// Package jmx reads what a JVM accounts for — heap, non-heap pools, buffer
// pools, Native Memory Tracking — from the places an operator has it: the
// JVM's own hsperfdata file, the HotSpot attach mechanism (what jcmd uses),
// and saved jcmd output.
package jmx

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// ParseError locates a parse failure in jcmd output.
type ParseError = parseerr.Error

// Sentinel errors, for errors.Is.
var (
	// ErrMalformed means the text is not the jcmd output expected.
	ErrMalformed = errors.New("malformed jcmd output")
	// ErrNMTDisabled means the JVM runs without -XX:NativeMemoryTracking.
	ErrNMTDisabled = errors.New("native memory tracking is not enabled")
	// ErrTruncated means the output stops before its end: a copy cut short.
	ErrTruncated = errors.New("truncated jcmd output")
)

// maxJcmdLine bounds one line of saved jcmd output; the longest real lines
// (a call site's frame in a detail report) are a few hundred bytes.
const maxJcmdLine = 1 << 20

// maxNMTRegions bounds the committed regions a detail report may list. A
// process has at most vm.max_map_count mappings (65530 by default), and a
// JVM's committed regions are fewer still; the report comes from the JVM,
// which its user controls.
const maxNMTRegions = 1 << 17

// nmtSlackKB is how far the categories of a summary may fall short of its
// Total line and the summary still be whole: each of HotSpot's memory types
// (under 32 in every JDK to date) loses less than 1 KB to rounding, or is
// omitted for weighing less than 1 KB. A cut that drops only such
// categories is below what the summary can show.
const nmtSlackKB = 32

// scanErr describes a failed read of jcmd output: a line past maxJcmdLine,
// or the reader's own error.
func scanErr(err error, name string, line int) error {
	if errors.Is(err, bufio.ErrTooLong) {
		return &ParseError{Name: name, Line: line, Msg: fmt.Sprintf("line longer than %d KiB: not jcmd output", maxJcmdLine>>10), Err: ErrMalformed}
	}
	return &ParseError{Name: name, Line: line, Msg: "read failed: " + err.Error(), Err: err}
}

// NMTCategory is one "- Name (reserved=…KB, committed=…KB)" block of
// `jcmd PID VM.native_memory summary`.
type NMTCategory struct {
	Name           string
	ReservedBytes  uint64
	CommittedBytes uint64
	// Parts as NMT reports them, when present.
	MallocBytes         uint64
	MallocCount         uint64
	MmapReservedBytes   uint64
	MmapCommittedBytes  uint64
	StackReservedBytes  uint64
	StackCommittedBytes uint64
	ArenaBytes          uint64
}

// NMT is a VM.native_memory summary, or the summary part of a detail
// report with its virtual memory map.
type NMT struct {
	ReservedBytes  uint64
	CommittedBytes uint64
	MallocBytes    uint64 // total malloc, when the JDK prints it
	Categories     []NMTCategory
	// Regions are the committed ranges of the virtual memory map, in
	// address order; only `VM.native_memory detail` prints them. They let
	// smaps say how much of what NMT calls committed is resident.
	Regions []NMTRegion
}

// NMTRegion is one committed range of the detail report's virtual memory
// map and the category that reserved it, named as in the summary ("GC",
// "Code", "Thread" for thread stacks).
type NMTRegion struct {
	Category   string
	Start, End uint64 // [Start, End)
}

// Category returns the named category (names vary by JDK: "Java Heap",
// "Class", "Thread", "Code", "GC", "Other", …).
func (n *NMT) Category(name string) (NMTCategory, bool) {
	for _, c := range n.Categories {
		if c.Name == name {
			return c, true
		}
	}
	return NMTCategory{}, false
}

// Compiled on first use, not at start: every run of memdiag would pay for
// them, and most never read this format.
var (
	nmtTotal    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^Total: reserved=(\d+)KB, committed=(\d+)KB`) })
	nmtCategory = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^-\s+(.+?) \(reserved=(\d+)KB, committed=(\d+)KB\)`) })
	nmtMalloc   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\(malloc=(\d+)KB(?: #(\d+))?`) })
	nmtMmap     = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\(mmap: reserved=(\d+)KB, committed=(\d+)KB\)`) })
	nmtStack    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\(stack: reserved=(\d+)KB, committed=(\d+)KB\)`) })
	nmtArena    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\(arena=(\d+)KB`) })
	nmtTotalMal = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s+malloc: (\d+)KB`) })
	// The detail report's virtual memory map: a reservation at the left
	// margin, then its committed ranges indented.
	nmtReserved = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\[0x([0-9a-f]+) - 0x([0-9a-f]+)\] reserved( and committed)? \d+KB for (.+?)(?: from)?$`)
	})
	nmtCommitted = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s+\[0x([0-9a-f]+) - 0x([0-9a-f]+)\] committed \d+KB`)
	})
)

// nmtMapCategory names a virtual memory map category as the summary does.
func nmtMapCategory(name string) string {
	if name == "Thread Stack" {
		return "Thread"
	}
	return name
}

func kb(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v * 1024
}

func nmtRange(start, end, name string, line int, text string) (NMTRegion, error) {
	r := NMTRegion{Start: hexAddr(start), End: hexAddr(end)}
	if r.End <= r.Start {
		return r, &ParseError{Name: name, Line: line, Msg: "range ends before it starts: " + strconv.Quote(text), Err: ErrMalformed}
	}
	return r, nil
}

// ParseNMT reads the text of `jcmd PID VM.native_memory summary` or
// `… detail`, with or without the "PID:" line jcmd prints first. name
// labels errors.
func ParseNMT(r io.Reader, name string) (*NMT, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxJcmdLine)
	p := &nmtParser{n: &NMT{}, name: name}
	for sc.Scan() {
		p.line++
		if err := p.parseLine(strings.TrimRight(sc.Text(), " ")); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(err, name, p.line+1)
	}
	if err := p.flushWhole(); err != nil {
		return nil, err
	}
	n := p.n
	if p.totalLine == 0 {
		return nil, &ParseError{Name: name, Msg: `no "Total: reserved=…KB, committed=…KB" line: not VM.native_memory summary output`, Err: ErrMalformed}
	}
	if err := n.checkTotal(name, p.line, p.totalLine, p.lastCategoryLine); err != nil {
		return nil, err
	}
	sort.Slice(n.Regions, func(i, j int) bool { return n.Regions[i].Start < n.Regions[j].Start })
	return n, nil
}

// The sections of an NMT report: the detail report follows the summary
// with the virtual memory map, then per-call-site details (nothing the
// summary lacks).
const (
	nmtSummary = iota
	nmtVMMap
	nmtDetails
)

// nmtParser is ParseNMT's state between lines.
type nmtParser struct {
	n    *NMT
	name string
	cur  *NMTCategory
	line int
	// totalLine and lastCategoryLine are where the Total line and the last
	// category were, for checkTotal.
	totalLine, lastCategoryLine int
	section                     int
	reservedFor                 string
	// whole is a reservation "reserved and committed" whole that may list
	// no committed ranges of its own: it then counts whole, unless ranges
	// follow.
	whole *NMTRegion
}

func (p *nmtParser) parseLine(text string) error {
	if strings.Contains(text, "Native memory tracking is not enabled") {
		return &ParseError{Name: p.name, Line: p.line, Msg: "native memory tracking is not enabled: start the JVM with -XX:NativeMemoryTracking=summary", Err: ErrNMTDisabled}
	}
	switch {
	case text == "Virtual memory map:":
		p.section = nmtVMMap
		return nil
	case text == "Details:":
		p.section = nmtDetails
		return p.flushWhole()
	case p.section == nmtDetails:
		return nil
	case p.section == nmtVMMap:
		return p.vmMapLine(text)
	}
	return p.summaryLine(text)
}

func (p *nmtParser) addRegion(r NMTRegion) error {
	if len(p.n.Regions) == maxNMTRegions {
		return &ParseError{Name: p.name, Line: p.line, Msg: fmt.Sprintf("more than %d committed regions: more than a process can map (vm.max_map_count is 65530 by default)", maxNMTRegions)}
	}
	p.n.Regions = append(p.n.Regions, r)
	return nil
}

func (p *nmtParser) flushWhole() error {
	if p.whole == nil {
		return nil
	}
	r := *p.whole
	p.whole = nil
	return p.addRegion(r)
}

// vmMapLine reads a line of the virtual memory map: a reservation and
// the category it is for, or a committed range inside it.
func (p *nmtParser) vmMapLine(text string) error {
	if m := nmtReserved().FindStringSubmatch(text); m != nil {
		if err := p.flushWhole(); err != nil {
			return err
		}
		p.reservedFor = nmtMapCategory(m[4])
		if m[3] != "" {
			r, err := nmtRange(m[1], m[2], p.name, p.line, text)
			if err != nil {
				return err
			}
			r.Category, p.whole = p.reservedFor, &r
		}
		return nil
	}
	if m := nmtCommitted().FindStringSubmatch(text); m != nil && p.reservedFor != "" {
		r, err := nmtRange(m[1], m[2], p.name, p.line, text)
		if err != nil {
			return err
		}
		r.Category, p.whole = p.reservedFor, nil
		return p.addRegion(r)
	}
	return nil
}

// summaryLine reads a line of the summary: the Total, a category, or a
// figure of the category last named.
func (p *nmtParser) summaryLine(text string) error {
	n := p.n
	if m := nmtTotal().FindStringSubmatch(text); m != nil {
		n.ReservedBytes, n.CommittedBytes, p.totalLine = kb(m[1]), kb(m[2]), p.line
		return nil
	}
	if m := nmtTotalMal().FindStringSubmatch(text); m != nil && p.cur == nil {
		n.MallocBytes = kb(m[1])
		return nil
	}
	trimmed := strings.TrimLeft(text, " ")
	if m := nmtCategory().FindStringSubmatch(trimmed); m != nil {
		n.Categories = append(n.Categories, NMTCategory{Name: m[1], ReservedBytes: kb(m[2]), CommittedBytes: kb(m[3])})
		p.cur = &n.Categories[len(n.Categories)-1]
		p.lastCategoryLine = p.line
		return nil
	}
	if strings.HasPrefix(trimmed, "- ") && strings.Contains(trimmed, "(reserved=") && strings.HasSuffix(trimmed, ")") {
		// A whole category line whose figures do not read: said here, not
		// later as categories that fall short of the Total. (One cut short
		// is left to that check, which says truncated.)
		return &ParseError{Name: p.name, Line: p.line, Msg: fmt.Sprintf(`expected a category "- NAME (reserved=NKB, committed=NKB)" (jcmd's default scale, KB), got %q`, trimmed), Err: ErrMalformed}
	}
	cur := p.cur
	if cur == nil {
		return nil
	}
	if m := nmtMalloc().FindStringSubmatch(text); m != nil {
		cur.MallocBytes = kb(m[1])
		cur.MallocCount, _ = strconv.ParseUint(m[2], 10, 64)
	}
	if m := nmtMmap().FindStringSubmatch(text); m != nil {
		cur.MmapReservedBytes, cur.MmapCommittedBytes = kb(m[1]), kb(m[2])
	}
	if m := nmtStack().FindStringSubmatch(text); m != nil {
		cur.StackReservedBytes, cur.StackCommittedBytes = kb(m[1]), kb(m[2])
	}
	if m := nmtArena().FindStringSubmatch(text); m != nil {
		cur.ArenaBytes = kb(m[1])
	}
	return nil
}

// checkTotal holds a summary to its Total line: the categories add up to
// it, within rounding. Fewer means the copy was cut (a file written while
// jcmd ran, a paste cut short); more, two summaries in one file.
func (n *NMT) checkTotal(name string, lines, totalLine, lastCategoryLine int) error {
	var reserved, committed uint64
	for _, c := range n.Categories {
		reserved += c.ReservedBytes
		committed += c.CommittedBytes
	}
	const slack = nmtSlackKB << 10
	if len(n.Categories) == 0 {
		return &ParseError{Name: name, Line: lines, Msg: fmt.Sprintf("no category after the Total line (line %d): truncated", totalLine), Err: ErrTruncated}
	}
	if reserved+slack < n.ReservedBytes || committed+slack < n.CommittedBytes {
		last := n.Categories[len(n.Categories)-1].Name
		return &ParseError{Name: name, Line: lines, Msg: fmt.Sprintf(
			"the categories add up to reserved=%dKB, committed=%dKB, short of the Total line's reserved=%dKB, committed=%dKB (line %d): truncated after category %q (line %d)",
			reserved>>10, committed>>10, n.ReservedBytes>>10, n.CommittedBytes>>10, totalLine, last, lastCategoryLine), Err: ErrTruncated}
	}
	if reserved > n.ReservedBytes+slack || committed > n.CommittedBytes+slack {
		return &ParseError{Name: name, Line: totalLine, Msg: fmt.Sprintf(
			"the categories add up to reserved=%dKB, committed=%dKB, more than this Total line's reserved=%dKB, committed=%dKB: more than one summary in the file?",
			reserved>>10, committed>>10, n.ReservedBytes>>10, n.CommittedBytes>>10), Err: ErrMalformed}
	}
	return nil
}

// HeapInfo is `jcmd PID GC.heap_info`.
type HeapInfo struct {
	GC             string // "G1", "Parallel", "Serial", "ZGC", "Shenandoah"
	CommittedBytes uint64
	UsedBytes      uint64
	// MaxBytes is known for ZGC and Shenandoah only.
	MaxBytes uint64
	// Start and End bound the reserved Java heap, when printed (all but ZGC).
	Start, End uint64
	// Metaspace and its class space, as printed after the heap.
	MetaspaceUsedBytes, MetaspaceCommittedBytes, MetaspaceReservedBytes    uint64
	ClassSpaceUsedBytes, ClassSpaceCommittedBytes, ClassSpaceReservedBytes uint64
}

var (
	hiG1 = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`garbage-first heap\s+total (\d+)K, used (\d+)K \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)`)
	})
	hiGen = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*(PSYoungGen|ParOldGen|def new generation|tenured generation)\s+total (\d+)K, used (\d+)K \[(0x[0-9a-f]+), (0x[0-9a-f]+), (0x[0-9a-f]+)\)`)
	})
	hiZ = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`ZHeap\s+used (\d+)M, capacity (\d+)M, max capacity (\d+)M`)
	})
	hiShen = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(\d+)([KMG]) max, .*?(\d+)([KMG]) committed, (\d+)([KMG]) used`)
	})
	hiShenRange = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*- \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)`) })
	// JDK 11 prints a capacity between used and committed.
	hiMeta = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*Metaspace\s+used (\d+)K,(?: capacity \d+K,)? committed (\d+)K, reserved (\d+)K`)
	})
	hiClass = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^\s*class space\s+used (\d+)K,(?: capacity \d+K,)? committed (\d+)K, reserved (\d+)K`)
	})
)

func hexAddr(s string) uint64 {
	v, _ := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	return v
}

func unitBytes(n, unit string) uint64 {
	v, _ := strconv.ParseUint(n, 10, 64)
	switch unit {
	case "K":
		return v << 10
	case "M":
		return v << 20
	case "G":
		return v << 30
	}
	return v
}

// ParseHeapInfo reads `jcmd PID GC.heap_info` for G1, Parallel, Serial,
// ZGC and Shenandoah.
func ParseHeapInfo(r io.Reader, name string) (*HeapInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxJcmdLine)
	h := &HeapInfo{}
	line := 0
	shenandoah, metaspace := false, false
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case hiG1().MatchString(text):
			m := hiG1().FindStringSubmatch(text)
			h.GC, h.CommittedBytes, h.UsedBytes, h.Start, h.End = "G1", kb(m[1]), kb(m[2]), hexAddr(m[3]), hexAddr(m[4])
		case hiGen().MatchString(text):
			m := hiGen().FindStringSubmatch(text)
			if strings.HasPrefix(strings.TrimSpace(m[1]), "PS") || strings.HasPrefix(m[1], "Par") {
				h.GC = "Parallel"
			} else {
				h.GC = "Serial"
			}
			h.CommittedBytes += kb(m[2])
			h.UsedBytes += kb(m[3])
			start, end := hexAddr(m[4]), hexAddr(m[6])
			if h.Start == 0 || start < h.Start {
				h.Start = start
			}
			h.End = max(h.End, end)
		case hiZ().MatchString(text):
			m := hiZ().FindStringSubmatch(text)
			h.GC, h.UsedBytes, h.CommittedBytes, h.MaxBytes = "ZGC", unitBytes(m[1], "M"), unitBytes(m[2], "M"), unitBytes(m[3], "M")
		case strings.HasPrefix(strings.TrimSpace(text), "Shenandoah Heap"):
			h.GC, shenandoah = "Shenandoah", true
		case shenandoah && hiShen().MatchString(text) && h.CommittedBytes == 0:
			m := hiShen().FindStringSubmatch(text)
			h.MaxBytes, h.CommittedBytes, h.UsedBytes = unitBytes(m[1], m[2]), unitBytes(m[3], m[4]), unitBytes(m[5], m[6])
		case shenandoah && hiShenRange().MatchString(text) && h.Start == 0:
			m := hiShenRange().FindStringSubmatch(text)
			h.Start, h.End = hexAddr(m[1]), hexAddr(m[2])
		case strings.HasPrefix(strings.TrimSpace(text), "Metaspace ") && !hiMeta().MatchString(text):
			metaspace = true // a JDK whose figures this reader does not know
		case hiMeta().MatchString(text):
			metaspace = true
			m := hiMeta().FindStringSubmatch(text)
			h.MetaspaceUsedBytes, h.MetaspaceCommittedBytes, h.MetaspaceReservedBytes = kb(m[1]), kb(m[2]), kb(m[3])
		case hiClass().MatchString(text):
			m := hiClass().FindStringSubmatch(text)
			h.ClassSpaceUsedBytes, h.ClassSpaceCommittedBytes, h.ClassSpaceReservedBytes = kb(m[1]), kb(m[2]), kb(m[3])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, scanErr(err, name, line+1)
	}
	if h.GC == "" {
		return nil, &ParseError{Name: name, Msg: "no heap line of G1, Parallel, Serial, ZGC or Shenandoah: not GC.heap_info output", Err: ErrMalformed}
	}
	if !metaspace {
		// Every collector's GC.heap_info ends with Metaspace (JDK 9 on).
		return nil, &ParseError{Name: name, Line: line, Msg: `no "Metaspace used …" line, which GC.heap_info prints after the heap: truncated`, Err: ErrTruncated}
	}
	if h.Start != 0 && h.End <= h.Start {
		return nil, &ParseError{Name: name, Msg: fmt.Sprintf("heap range [%#x, %#x) is empty", h.Start, h.End), Err: ErrMalformed}
	}
	return h, nil
}
