package cmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/goruntime"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/procmem"
	"github.com/memdiag/memdiag/internal/promtext"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/nodejs"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/pymalloc"
	"github.com/memdiag/memdiag/syscalltrace"
)

// GatherOptions say where explain and snapshot find their evidence.
type GatherOptions struct {
	PID               int
	SmapsFile         string
	MallocInfoFile    string
	CaptureMallocInfo bool
	// UseGDB and NoStop choose how glibc's statistics are captured: see
	// mallocinfo.Capturer.
	UseGDB          bool
	NoStop          bool
	TraceFiles      []string
	NMTFile         string
	HeapInfoFile    string
	Prometheus      string
	Expvar          string // a Go program's /debug/vars, URL or file
	NoAttach        bool
	Timeout         time.Duration
	Jolokia         jmx.Jolokia
	jolokiaCredFile string
	Cores           int
	// Record, with PID, records the allocator for this long first
	// (explain --record).
	Record time.Duration
}

func (o *GatherOptions) register(f *pflag.FlagSet) {
	f.IntVar(&o.PID, "pid", 0, "explain this live process (smaps, and for a JVM its hsperfdata and attach)")
	f.StringVar(&o.SmapsFile, "smaps", "", "offline: a saved /proc/PID/smaps")
	f.StringVar(&o.MallocInfoFile, "malloc-info", "", "the allocator's statistics: glibc malloc_info XML (a document or a log; the last document is used), jemalloc's malloc_stats_print (JSON or text) or tcmalloc's GetStats")
	f.BoolVar(&o.CaptureMallocInfo, "capture-malloc-info", false, "with --pid: capture the statistics of whichever allocator the process uses: glibc's arenas read from its memory (its threads stop for milliseconds, no code runs in it), jemalloc's and tcmalloc's through gdb")
	f.BoolVar(&o.UseGDB, "gdb", false, "with --capture-malloc-info: ask glibc's own malloc_info through gdb instead of reading the process's memory (runs code in the process)")
	f.BoolVar(&o.NoStop, "no-stop", false, "with --capture-malloc-info: read glibc's arenas without stopping the process (the figures may be torn)")
	f.StringSliceVar(&o.TraceFiles, "trace", nil, "a syscall trace of the process (strace, perf trace, sysdig, bpftrace): its never-unmapped mappings")
	f.StringVar(&o.NMTFile, "nmt", "", "saved jcmd VM.native_memory summary")
	f.StringVar(&o.HeapInfoFile, "heap-info", "", "saved jcmd GC.heap_info")
	f.StringVar(&o.Prometheus, "prometheus", "", "a Prometheus page (URL or saved file) with a JVM's memory metrics or a Node.js program's (prom-client's nodejs_heap_*)")
	f.StringVar(&o.Expvar, "expvar", "", "a Go program's runtime.MemStats from its expvar page (http://HOST:PORT/debug/vars), a Prometheus page with the Go collector's go_memstats_* (/metrics), or a saved copy")
	f.StringVar(&o.Jolokia.URL, "jolokia", "", "JVM memory MBeans from this Jolokia endpoint")
	f.StringVar(&o.jolokiaCredFile, "jolokia-credentials", "", "file whose first line is USER:PASSWORD (else MEMDIAG_JOLOKIA_USER/MEMDIAG_JOLOKIA_PASSWORD)")
	f.BoolVar(&o.NoAttach, "no-attach", false, "never attach to a JVM (no heap range, no NMT)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "bound for each live capture (attach, gdb, Jolokia, a Prometheus or expvar page)")
	f.IntVar(&o.Cores, "cores", 0, "cores of the process's host, for glibc's arena limit (default: this host's with --capture-malloc-info, unknown for a file)")
}

// evidence names the first evidence flag given beside smaps, or "".
func (o *GatherOptions) evidence() string {
	switch {
	case o.MallocInfoFile != "":
		return "--malloc-info"
	case o.CaptureMallocInfo:
		return "--capture-malloc-info"
	case len(o.TraceFiles) > 0:
		return "--trace"
	case o.NMTFile != "":
		return "--nmt"
	case o.HeapInfoFile != "":
		return "--heap-info"
	case o.Prometheus != "":
		return "--prometheus"
	case o.Expvar != "":
		return "--expvar"
	case o.Jolokia.URL != "":
		return "--jolokia"
	}
	return ""
}

func (o *GatherOptions) validate(getenv func(string) string) error {
	if o.PID == 0 && o.SmapsFile == "" {
		if e := o.evidence(); e != "" {
			return usage(fmt.Errorf("%s needs --pid PID or --smaps FILE: the mappings are what it explains", e))
		}
		return usage(fmt.Errorf("give --pid PID, or --smaps FILE with the other evidence you have"))
	}
	if o.PID != 0 && o.SmapsFile != "" {
		return usage(fmt.Errorf("--pid and --smaps both give smaps: give one"))
	}
	if o.CaptureMallocInfo && (o.PID == 0 || o.MallocInfoFile != "") {
		return usage(fmt.Errorf("--capture-malloc-info needs --pid and no --malloc-info"))
	}
	if (o.UseGDB || o.NoStop) && !o.CaptureMallocInfo {
		return usage(fmt.Errorf("--gdb and --no-stop say how --capture-malloc-info reads glibc's arenas: give it too"))
	}
	if o.UseGDB && o.NoStop {
		return usage(fmt.Errorf("--no-stop reads the process's memory; --gdb asks the process itself: give one"))
	}
	if o.Jolokia.URL != "" {
		if err := jolokiaCredentials(&o.Jolokia, o.jolokiaCredFile, getenv); err != nil {
			return err
		}
		o.Jolokia.Timeout = o.Timeout
	}
	return nil
}

// gather reads every source given and returns the inputs of an
// attribution. Sources that fail after smaps is read are noted, not fatal:
// the attribution then says what it could not see. failed lists the
// sources the user asked for by a flag (a live malloc_info capture,
// Jolokia, Prometheus) that could not be read, for the caller to warn of
// or refuse.
func gather(ctx context.Context, o *GatherOptions, procRoot string, stderr io.Writer) (in *explain.Inputs, failed []string, err error) {
	in = &explain.Inputs{Notes: []string{}}
	// --record watches the allocator first: smaps is then read as the
	// recording leaves the process.
	rec, err := recordFirst(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	var ms []pmap.Mapping
	var hints pmap.Hints
	var fsys pmap.FS // the live process's, kept for its pagemap
	if o.PID != 0 {
		var err error
		if fsys, err = pmap.NewFS(procRoot); err != nil {
			return nil, nil, err
		}
		p, err := fsys.ReadPID(o.PID)
		if err != nil {
			return nil, nil, err
		}
		ms, hints = p.Mappings, p.Hints
		in.PID, in.Command, in.Source = p.PID, p.Command, fmt.Sprintf("%s/%d/smaps", procRoot, o.PID)
		if dir, path, _, err := memcg.Locate(procRoot, "/sys/fs/cgroup", o.PID); err == nil {
			if g, err := memcg.Read(dir); err == nil {
				in.Cgroup = &explain.CgroupBrief{Path: path, Version: g.Version, UsageBytes: g.UsageBytes, LimitBytes: g.LimitBytes, WorkingSetBytes: g.WorkingSetBytes()}
			}
		}
		if p.Check.Available {
			ok := p.Check.Consistent
			in.RSSConsistent = &ok
		}
		in.Notes = append(in.Notes, p.Notes...)
	} else {
		var err error
		if ms, err = readSmapsFile(o.SmapsFile, nil); err != nil {
			return nil, nil, err
		}
		in.Source = o.SmapsFile
	}

	for _, m := range ms {
		switch k := allocator.OfLibrary(m.Name); {
		case k == allocator.Jemalloc || k == allocator.Tcmalloc:
			in.Allocator = string(k)
		case k == allocator.Glibc && in.Allocator == "":
			in.Allocator = string(k)
		}
	}

	// The JVM's accounting, from every source given.
	var jvm *jmx.JVMMemory
	merge := func(m *jmx.JVMMemory) {
		if jvm == nil {
			jvm = m
		} else {
			jvm.Merge(m)
		}
	}
	if o.PID != 0 {
		if isJVM, _ := jmx.IsJVM(procRoot, o.PID); isJVM {
			m, err := jmx.ReadPID(ctx, o.PID, jmx.ReadOptions{ProcRoot: procRoot, NoAttach: o.NoAttach, Timeout: o.Timeout, Notify: notifier(stderr)})
			if err != nil {
				in.Notes = append(in.Notes, "JVM: "+err.Error())
			} else {
				merge(m)
			}
		}
	}
	if o.Jolokia.URL != "" {
		if m, err := o.Jolokia.Read(ctx); err != nil {
			in.Notes = append(in.Notes, err.Error())
			failed = append(failed, err.Error())
		} else {
			merge(m)
		}
	}
	if o.Prometheus != "" {
		// One reading of the page, for whichever runtime's metrics it holds.
		m, node, err := readPrometheus(ctx, o.Prometheus, o.Timeout)
		switch {
		case err != nil && !promtext.IsURL(o.Prometheus):
			// An endpoint may be down a while; a file is evidence the
			// user gave, as --nmt is, and a bad one is an error.
			return nil, nil, err
		case err != nil:
			in.Notes = append(in.Notes, err.Error())
			failed = append(failed, err.Error())
		case node != nil:
			in.Node = node
		default:
			merge(m)
		}
	}
	if o.Expvar != "" {
		var gs *goruntime.MemStats
		var err error
		if strings.HasPrefix(o.Expvar, "http://") || strings.HasPrefix(o.Expvar, "https://") {
			if gs, err = goruntime.Fetch(ctx, o.Expvar, o.Timeout); err != nil {
				// An endpoint may be down a while: a note, as --prometheus.
				in.Notes = append(in.Notes, err.Error())
				failed = append(failed, err.Error())
			}
		} else if gs, err = readWith(o.Expvar, goruntime.Parse); err != nil {
			return nil, nil, err
		}
		in.Go = gs
	}
	if o.HeapInfoFile != "" || o.NMTFile != "" {
		m := &jmx.JVMMemory{}
		if o.HeapInfoFile != "" {
			hi, err := readWith(o.HeapInfoFile, jmx.ParseHeapInfo)
			if err != nil {
				return nil, nil, err
			}
			m.ApplyHeapInfo(hi, o.HeapInfoFile)
		}
		if o.NMTFile != "" {
			n, err := readWith(o.NMTFile, jmx.ParseNMT)
			if err != nil {
				return nil, nil, err
			}
			m.NMT, m.Sources = n, append(m.Sources, o.NMTFile)
		}
		merge(m)
	}
	if jvm != nil {
		jvm.AddNMTDirect()
		hints.Regions = append(hints.Regions, jvm.Regions()...)
		in.FromJVM(jvm)
		if jvm.NMT != nil && len(jvm.NMT.Regions) > 0 {
			weighNMT(in, jvm.NMT.Regions, ms, fsys, o.PID)
		}
		in.Notes = append(in.Notes, jvm.Notes...)
	}
	pmap.Classify(ms, hints)
	in.FromMappings(ms)
	if o.PID != 0 && mapsCPython(ms) {
		readPymalloc(in, procRoot, o.PID)
	}

	// The allocator's statistics: a file (glibc's malloc_info, jemalloc's
	// or tcmalloc's, sniffed), or a live capture of whichever allocator
	// the process uses.
	var info *mallocinfo.Info
	var other *allocator.Stats
	source := o.MallocInfoFile
	switch {
	case o.MallocInfoFile != "":
		f, err := input.Open(o.MallocInfoFile)
		if err != nil {
			return nil, nil, err
		}
		br := allocator.NewSniffer(f)
		switch allocator.Sniff(br) {
		case allocator.FormatJemalloc:
			other, err = allocator.ParseJemalloc(br, o.MallocInfoFile)
		case allocator.FormatTcmalloc:
			other, err = allocator.ParseTcmalloc(br, o.MallocInfoFile)
		default:
			err = mallocinfo.Scan(br, o.MallocInfoFile, func(i *mallocinfo.Info) error { info = i; return nil })
		}
		f.Close()
		if err != nil {
			return nil, nil, err
		}
	case o.CaptureMallocInfo:
		det, err := allocator.Detect(procRoot, o.PID)
		if err == nil && det.Kind != allocator.Unknown {
			in.Notes = append(in.Notes, allocatorNote(det))
		}
		if err == nil && (det.Kind == allocator.Jemalloc || det.Kind == allocator.Tcmalloc) {
			live := allocator.Live{Injector: gdbinject.Injector{ProcRoot: procRoot, Timeout: o.Timeout, Notify: notifier(stderr)}, Canary: &allocator.PtraceCanary{}}
			if other, err = live.Capture(ctx, o.PID, det); err != nil {
				in.Notes = append(in.Notes, string(det.Kind)+": "+err.Error())
				failed = append(failed, string(det.Kind)+": "+err.Error())
			}
			break
		}
		capturer := mallocinfo.Capturer{UseGDB: o.UseGDB, NoStop: o.NoStop, ProcRoot: procRoot, Timeout: o.Timeout, Notify: notifier(stderr)}
		if info, err = capturer.Capture(ctx, o.PID); err != nil {
			in.Notes = append(in.Notes, "malloc_info: "+err.Error())
			failed = append(failed, "malloc_info: "+err.Error())
		}
		source = capturer.Source(o.PID)
	}
	if other != nil {
		in.FromAllocator(other, allocator.Findings(other))
	}
	if info != nil {
		s := mallocinfo.Analyze(info)
		// Only a live capture knows the cores behind glibc's arena limit;
		// a saved document may come from another machine.
		cores := o.Cores
		if cores == 0 && o.CaptureMallocInfo {
			cores = runtime.NumCPU()
		}
		fs := mallocinfo.Findings(s, mallocinfo.DefaultThresholds(cores), source)
		in.FromMalloc(s, source, fs)
	}

	// A syscall trace: what was mapped and never unmapped, weighed by smaps.
	if len(o.TraceFiles) > 0 {
		if err := gatherTrace(o, in, ms); err != nil {
			return nil, nil, err
		}
	}
	if rec != nil {
		recordInto(in, rec, ms)
	}
	return in, failed, nil
}

func gatherTrace(o *GatherOptions, in *explain.Inputs, ms []pmap.Mapping) error {
	files, pids, err := syscalltrace.Expand(o.TraceFiles)
	if err != nil {
		return err
	}
	var inputs []*syscalltrace.Input
	for _, path := range files {
		f, err := input.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		tin, err := syscalltrace.OpenFile(path, f, syscalltrace.FormatAuto, pids[path])
		if err != nil {
			return err
		}
		defer tin.Close()
		inputs = append(inputs, tin)
	}
	src, stop := syscalltrace.Combine(inputs, runtime.GOMAXPROCS(0))
	defer stop()
	replay := syscalltrace.NewReplay(true)
	if err := replay.ApplyAll(src); err != nil {
		return err
	}
	traceInto(in, strings.Join(o.TraceFiles, " "), replay, replay.Outstanding(), ms)
	return nil
}

// traceInto joins the mappings a replay left outstanding with smaps: the
// trace evidence (of a trace file, or of memdiag record).
func traceInto(in *explain.Inputs, source string, replay *syscalltrace.Replay, outstanding []*syscalltrace.Mapping, ms []pmap.Mapping) {
	out := leakCandidates(outstanding, in.JVM != nil)
	// Only plain anonymous memory can be a leak: what smaps classes as a
	// glibc arena, a thread stack or the JVM's heap and native memory is
	// claimed by the categories that account for it.
	var plain []pmap.Mapping
	for _, m := range ms {
		if m.Class == pmap.ClassAnon {
			plain = append(plain, m)
		}
	}
	resident := syscalltrace.JoinSmaps(out, plain)
	groups := syscalltrace.Groups(out, syscalltrace.GroupAuto, resident)
	in.FromTrace(source, out, resident, groups, syscalltrace.Findings(out, groups, &replay.Stats, source, true))
}

// leakCandidates drops, in a JVM, the mappings the JVM made itself (a
// libjvm.so frame on their stack: its heap, metaspace and code cache
// reservations and commits), which its heap range and NMT account for.
func leakCandidates(out []*syscalltrace.Mapping, jvm bool) []*syscalltrace.Mapping {
	if !jvm {
		return out
	}
	kept := out[:0:0]
	for _, m := range out {
		if !m.MadeBy("libjvm.so") {
			kept = append(kept, m)
		}
	}
	return kept
}

func readWith[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := input.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, path)
}

// weighNMT reads how much of each NMT category's committed memory is
// resident: exactly from a live process's pagemap, else shared out from
// smaps.
func weighNMT(in *explain.Inputs, regions []jmx.NMTRegion, ms []pmap.Mapping, fsys pmap.FS, pid int) {
	if pid != 0 {
		pm, err := fsys.OpenPageMap(pid)
		if err == nil {
			defer pm.Close()
			if err = in.WeighNMT(regions, ms, pm.ResidentBytes); err == nil {
				return
			}
		}
		in.Notes = append(in.Notes, fmt.Sprintf("NMT regions weighed from smaps, not pagemap (%v): a region that shares a mapping with resident neighbours may be over-counted", err))
	}
	if err := in.WeighNMT(regions, ms, nil); err != nil {
		in.Notes = append(in.Notes, fmt.Sprintf("NMT regions not weighed (%v): NMT's mmap'd memory is not claimed", err))
	}
}

// readPrometheus reads a Prometheus page once and parses it as the
// runtime it is from: a Node.js program's prom-client metrics, or a JVM's.
func readPrometheus(ctx context.Context, target string, timeout time.Duration) (*jmx.JVMMemory, *nodejs.Memory, error) {
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

// mapsCPython reports whether a CPython interpreter (python3.X or
// libpython3.X) is mapped executable.
func mapsCPython(ms []pmap.Mapping) bool {
	for _, m := range ms {
		if _, _, _, ok := pymalloc.Version(m.Name); ok && !m.Anonymous() && m.Perms[2] == 'x' {
			return true
		}
	}
	return false
}

// readPymalloc reads a CPython process's small-object pools from its
// memory: nothing runs in it and it is not stopped, so it is done without
// being asked; what fails is a note.
func readPymalloc(in *explain.Inputs, procRoot string, pid int) {
	p, err := procmem.Open(procRoot, pid)
	if err == nil {
		defer p.Close()
		in.Python, err = pymalloc.ReadProcess(p)
	}
	if err != nil {
		in.Notes = append(in.Notes, "CPython's small-object arenas (pymalloc) not read: "+err.Error())
	}
}
