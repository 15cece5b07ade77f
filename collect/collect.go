// Package collect reads the evidence about one process — its mappings, the
// JVM's accounting, the allocator's statistics, a syscall trace, the Go
// runtime's — from the live process or from saved files, and returns it as
// the inputs of an attribution (explain.Inputs). It is the one floor between
// the commands, which own flags, streams and exit codes, and the source
// packages, which each read one thing.
//
// It prints nothing: waits are told through Request.Notify, what could not
// be read goes into the inputs' notes.
package collect

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/goruntime"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
	"github.com/memdiag/memdiag/internal/promtext"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/nodejs"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/pymalloc"
)

// Request says where the evidence is: a live process (PID) or a saved
// smaps (SmapsFile), and the other sources asked for.
type Request struct {
	Proc proc.FS // the proc filesystem (the zero value: /proc)
	// CgroupRoot is where cgroup filesystems are mounted ("" for
	// /sys/fs/cgroup).
	CgroupRoot string

	PID               int
	SmapsFile         string
	MallocInfoFile    string
	CaptureMallocInfo bool
	// UseGDB and NoStop choose how glibc's statistics are captured: see
	// mallocinfo.Capturer.
	UseGDB       bool
	NoStop       bool
	TraceFiles   []string
	NMTFile      string
	HeapInfoFile string
	Prometheus   string
	Expvar       string // a Go program's /debug/vars, URL or file
	NoAttach     bool
	Timeout      time.Duration
	Jolokia      jmx.Jolokia
	Cores        int
	// Record, with PID, records the allocator for this long first
	// (explain --record).
	Record time.Duration
	// Notify, when set, is told of a step that pauses the process or waits.
	Notify func(msg string)
}

// Inputs reads every source r names and returns the inputs of an
// attribution. Sources that fail after smaps is read are noted, not fatal:
// the attribution then says what it could not see. failed lists the
// sources asked for (a live allocator capture, Jolokia, a Prometheus or
// expvar endpoint) that could not be read, for the caller to warn of or
// refuse. A saved file that cannot be read is an error: it is evidence the
// user holds.
func Inputs(ctx context.Context, r *Request) (in *explain.Inputs, failed []string, err error) {
	in = &explain.Inputs{Notes: []string{}}
	c := &collection{r: r, in: in}
	rec, err := c.recordFirst(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := c.mappings(); err != nil {
		return nil, nil, err
	}
	if err := c.jvm(ctx); err != nil {
		return nil, nil, err
	}
	if err := c.goRuntime(ctx); err != nil {
		return nil, nil, err
	}
	pmap.Classify(c.ms, c.hints)
	in.FromMappings(c.ms)
	if v, ranges, ok := cpython(c.ms); r.PID != 0 && ok {
		c.pymalloc(v, ranges)
	}
	if err := c.allocator(ctx); err != nil {
		return nil, nil, err
	}
	if len(r.TraceFiles) > 0 {
		if err := c.trace(); err != nil {
			return nil, nil, err
		}
	}
	if rec != nil {
		c.recordInto(rec)
	}
	return in, c.failed, nil
}

// collection is one Inputs call on its way.
type collection struct {
	r      *Request
	in     *explain.Inputs
	ms     []pmap.Mapping
	hints  pmap.Hints
	fsys   pmap.FS // the live process's, kept for its pagemap
	failed []string
}

// fail notes a source asked for that could not be read.
func (c *collection) fail(msg string) {
	c.in.Notes = append(c.in.Notes, msg)
	c.failed = append(c.failed, msg)
}

// mappings reads smaps, live or saved, and for a live process its cgroup.
func (c *collection) mappings() error {
	r, in := c.r, c.in
	if r.PID == 0 {
		ms, err := SmapsFile(r.SmapsFile, nil)
		if err != nil {
			return err
		}
		c.ms, in.Source = ms, r.SmapsFile
		in.Allocator = mappedAllocator(ms)
		return nil
	}
	var err error
	if c.fsys, err = pmap.NewFS(r.Proc.Root()); err != nil {
		return err
	}
	p, err := c.fsys.ReadPID(r.PID)
	if err != nil {
		return err
	}
	c.ms, c.hints = p.Mappings, p.Hints
	in.PID, in.Command, in.Source = p.PID, p.Command, r.Proc.PIDPath(r.PID, "smaps")
	in.Cgroup = cgroupBrief(r.Proc, r.CgroupRoot, r.PID)
	if p.Check.Available {
		ok := p.Check.Consistent
		in.RSSConsistent = &ok
	}
	in.Notes = append(in.Notes, p.Notes...)
	in.Allocator = mappedAllocator(c.ms)
	return nil
}

// cgroupBrief is the memory cgroup of a live process, nil when it cannot
// be read (no cgroup filesystem, a container's view).
func cgroupBrief(fsys proc.FS, cgroupRoot string, pid int) *explain.CgroupBrief {
	if cgroupRoot == "" {
		cgroupRoot = "/sys/fs/cgroup"
	}
	dir, path, _, err := memcg.Locate(fsys, cgroupRoot, pid)
	if err != nil {
		return nil
	}
	g, err := memcg.Read(dir)
	if err != nil {
		return nil
	}
	return &explain.CgroupBrief{Path: path, Version: g.Version, UsageBytes: g.UsageBytes, LimitBytes: g.LimitBytes, WorkingSetBytes: g.WorkingSetBytes()}
}

// mappedAllocator names the malloc the mappings show: jemalloc or tcmalloc
// when one is mapped (an LD_PRELOAD wins over libc), else glibc's.
func mappedAllocator(ms []pmap.Mapping) allocator.Kind {
	kind := allocator.Unknown
	for _, m := range ms {
		switch k := allocator.OfLibrary(m.Name); {
		case k == allocator.Jemalloc || k == allocator.Tcmalloc:
			kind = k
		case k == allocator.Glibc && kind == allocator.Unknown:
			kind = k
		}
	}
	return kind
}

// jvm reads the JVM's accounting from every source given, and lets it
// locate the JVM's mappings.
func (c *collection) jvm(ctx context.Context) error {
	r := c.r
	s := JVMSources{Proc: r.Proc, NoAttach: r.NoAttach, Timeout: r.Timeout, Notify: r.Notify,
		HeapInfoFile: r.HeapInfoFile, NMTFile: r.NMTFile}
	var promFailed error
	if r.Prometheus != "" {
		// One reading of the page, for whichever runtime's metrics it holds.
		m, node, err := readPrometheusPage(ctx, r.Prometheus, r.Timeout)
		switch {
		case err != nil && !promtext.IsURL(r.Prometheus):
			// An endpoint may be down a while; a file is evidence the
			// user gave, as --nmt is, and a bad one is an error.
			return err
		case err != nil:
			promFailed = err
		case node != nil:
			c.in.Node = node
		default:
			s.PrometheusMemory = m
		}
	}
	if r.Jolokia.URL != "" {
		s.Jolokia = &r.Jolokia
	}
	if r.PID != 0 {
		if isJVM, _ := jmx.IsJVM(r.Proc, r.PID); isJVM {
			s.PID = r.PID
		}
	}
	jvm, failures, err := ReadJVM(ctx, s)
	if err != nil {
		return err
	}
	for _, f := range failures {
		if f.Source == SourceJVMProcess {
			// Not asked for by a flag: the process was found to be a JVM.
			c.in.Notes = append(c.in.Notes, "JVM: "+f.Err.Error())
			continue
		}
		c.fail(f.Err.Error())
	}
	if promFailed != nil {
		c.fail(promFailed.Error())
	}
	if jvm == nil {
		return nil
	}
	c.hints.Regions = append(c.hints.Regions, jvm.Regions()...)
	c.in.FromJVM(jvm)
	if jvm.NMT != nil && len(jvm.NMT.Regions) > 0 {
		c.weighNMT(jvm.NMT.Regions)
	}
	c.in.Notes = append(c.in.Notes, jvm.Notes...)
	return nil
}

// goRuntime reads a Go program's runtime.MemStats.
func (c *collection) goRuntime(ctx context.Context) error {
	r := c.r
	if r.Expvar == "" {
		return nil
	}
	if promtext.IsURL(r.Expvar) {
		gs, err := goruntime.Fetch(ctx, r.Expvar, r.Timeout)
		if err != nil {
			c.fail(err.Error())
		}
		c.in.Go = gs
		return nil
	}
	gs, err := readWith(r.Expvar, goruntime.Parse)
	if err != nil {
		return err
	}
	c.in.Go = gs
	return nil
}

// readPrometheusPage reads a Prometheus page once and parses it as the
// runtime it is from: a Node.js program's prom-client metrics, or a JVM's.
func readPrometheusPage(ctx context.Context, target string, timeout time.Duration) (*jmx.JVMMemory, *nodejs.Memory, error) {
	page, err := promtext.ReadPage(ctx, target, timeout)
	if err != nil {
		return nil, nil, err
	}
	if nodejs.Recognize(page) {
		node, err := nodejs.ParsePrometheus(bytes.NewReader(page), target)
		return nil, node, err
	}
	m, err := jmx.ParsePrometheus(bytes.NewReader(page), target)
	return m, nil, err
}

// cores is the host's core count behind glibc's arena limit: the one
// given, else this host's for a live capture; unknown (0) for a saved
// document, which may come from another machine.
func (r *Request) cores() int {
	if r.Cores == 0 && r.CaptureMallocInfo {
		return runtime.NumCPU()
	}
	return r.Cores
}

// pymallocBudget bounds the read of a CPython process's pools, which is
// done without being asked.
const pymallocBudget = 5 * time.Second

// cpython returns the CPython interpreter (python3.X or libpython3.X)
// the process maps executable, and where its pymalloc arenas can be: the
// anonymous read-write mappings pmap leaves as plain anon, with pages in
// RAM. (The heads of the pool lists are in the interpreter's initialised
// data, a file mapping: a link to them is outside what is searched.)
func cpython(ms []pmap.Mapping) (pymalloc.Interpreter, []pymalloc.Range, bool) {
	var v pymalloc.Interpreter
	found := false
	var ranges []pymalloc.Range
	for i := range ms {
		m := &ms[i]
		if !m.Anonymous() && m.Perms[2] == 'x' && !found {
			v, found = pymalloc.Version(m.Name)
		}
		if m.Class == pmap.ClassAnon && m.Perms == "rw-p" && m.Name == "" && m.Bytes(pmap.FieldRss) > 0 {
			ranges = append(ranges, pymalloc.Range{Start: m.Start, End: m.End})
		}
	}
	return v, ranges, found
}

// pymalloc reads a CPython process's small-object pools from its memory:
// nothing runs in it and it is not stopped, so it is done without being
// asked; what fails is a note.
func (c *collection) pymalloc(v pymalloc.Interpreter, ranges []pymalloc.Range) {
	in := c.in
	p, err := procmem.Open(c.r.Proc, c.r.PID)
	if err == nil {
		defer p.Close()
		in.Python, err = pymalloc.ReadProcess(p, v, ranges, time.Now().Add(pymallocBudget))
	}
	if err != nil {
		in.Notes = append(in.Notes, "CPython's small-object arenas (pymalloc) not read: "+err.Error())
	} else if in.Python.Truncated {
		in.Notes = append(in.Notes, fmt.Sprintf("CPython's small-object arenas (pymalloc): the read stopped at its bound (%s, %d pools, %d GiB of address space); its figures are those of the pools read", pymallocBudget, pymalloc.MaxPools, pymalloc.MaxAddressSpace>>30))
	}
}
