package explain

import (
	"fmt"
	"strings"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/pmap"
)

// Category names one part of RSS. Together they partition it exactly.
type Category string

// The categories, in the order Attribute assigns them.
const (
	CatFileBacked   Category = "file-backed"
	CatShmem        Category = "shmem"
	CatThreadStacks Category = "thread-stacks"
	CatJVMHeap      Category = "jvm-heap"
	CatGoHeap       Category = "go-heap"
	CatV8Heap       Category = "v8-heap"
	CatPyMalloc     Category = "pymalloc"
	CatLeaked       Category = "leaked-mappings"
	CatMallocFree   Category = "malloc-free-retained"
	CatDirect       Category = "direct-buffers"
	CatJVMNonHeap   Category = "jvm-non-heap"
	CatMallocInUse  Category = "malloc-in-use"
	CatOther        Category = "other"
	CatUnexplained  Category = "unexplained"
)

// Categories lists every category in output order.
func Categories() []Category {
	return []Category{CatJVMHeap, CatJVMNonHeap, CatDirect, CatGoHeap, CatV8Heap, CatPyMalloc, CatMallocInUse, CatMallocFree, CatLeaked,
		CatThreadStacks, CatFileBacked, CatShmem, CatOther, CatUnexplained}
}

// Entry is one category's share of RSS and where it comes from.
type Entry struct {
	Category   Category `json:"category"`
	Bytes      uint64   `json:"bytes"`
	Source     string   `json:"source"`
	Evidence   []string `json:"evidence"`
	Confidence string   `json:"confidence"` // high, medium, low
}

// Result is an attribution of RSS.
type Result struct {
	RSSBytes uint64 `json:"rss_bytes"`
	// PSSBytes is Σ Pss: RSS with every shared page divided among the
	// processes that map it; 0 where smaps did not give it.
	PSSBytes    uint64  `json:"pss_bytes,omitempty"`
	Attribution []Entry `json:"attribution"`
	// Unmeasured are the categories that apply to this process but that
	// no source measured (malloc-in-use without malloc_info, the JVM's
	// without its sources): absent from Attribution, never written as 0.
	Unmeasured []Category        `json:"unmeasured,omitempty"`
	Findings   []finding.Finding `json:"-"`
}

// Bytes returns the bytes attributed to c.
func (r *Result) Bytes(c Category) uint64 {
	for _, e := range r.Attribution {
		if e.Category == c {
			return e.Bytes
		}
	}
	return 0
}

// pool is resident memory not yet attributed: a claim takes at most what is left.
type pool struct {
	name string
	left uint64
}

func (p *pool) take(n uint64) uint64 {
	t := min(n, p.left)
	p.left -= t
	return t
}

// Attribute partitions RSS (Σ Rss over smaps mappings) into categories. The
// algorithm, each category's source and its confidence are described in
// docs/attribution.md. Every claim is capped by what is left of the pool it
// draws on, so no category is negative and they sum to RSS exactly.
func Attribute(in *Inputs) *Result {
	r := &Result{RSSBytes: in.totalRSS(), PSSBytes: in.totalPSS()}
	mismatch := in.mismatchedMalloc()
	if mismatch != nil {
		// Evidence from another process (or another time) is not joined:
		// it would attribute memory this process does not have.
		in = in.withoutMalloc()
	}
	entries := map[Category]*Entry{}
	add := func(c Category, n uint64, source, confidence string, evidence ...string) {
		e := entries[c]
		if e == nil {
			e = &Entry{Category: c, Source: source, Confidence: confidence}
			entries[c] = e
		} else if source != "" && !strings.Contains(e.Source, source) {
			e.Source += "; " + source
		}
		e.Bytes += n
		e.Evidence = append(e.Evidence, evidence...)
	}

	// 1. What the mappings themselves say.
	file, shmem := in.classRSS("file-code", "file-data"), in.classRSS("shmem")
	stacks, kernel := in.classRSS("stack", "thread-stack"), in.classRSS("kernel", "guard")
	add(CatFileBacked, file, "smaps", "high", fmt.Sprintf("Rss of file-code and file-data mappings: %d B", file))
	add(CatShmem, shmem, "smaps", "high", fmt.Sprintf("Rss of shmem mappings: %d B", shmem))
	add(CatThreadStacks, stacks, "smaps", "high",
		fmt.Sprintf("Rss of [stack] and %d thread-stack mappings: %d B", in.classMappings("thread-stack"), stacks))
	add(CatOther, kernel, "smaps", "high", "Rss of [vdso]/[vvar] and guard mappings")

	// 2. Anonymous memory: malloc, the JVM's native memory, leaks.
	// jvm-native mappings are what NMT's committed regions cover: their Rss
	// is claimed below through NMT, so it joins the anonymous pool.
	anonRSS := in.classRSS("heap", "glibc-arena", "anon", "jvm-heap", "jvm-native", string(pmap.ClassGoHeap), string(pmap.ClassV8Heap))
	anon := &pool{name: "anonymous", left: anonRSS}
	arenaRSS := in.classRSS("heap", "glibc-arena")

	if jh := in.classRSS("jvm-heap"); jh > 0 {
		located := "GC.heap_info" // what snapshots before heap_range_source used
		if in.JVM != nil && in.JVM.HeapRangeSource != "" {
			located = in.JVM.HeapRangeSource
		}
		add(CatJVMHeap, anon.take(jh), "smaps ∩ "+located, "high",
			fmt.Sprintf("Rss of the mappings inside the Java heap range (from %s): %d B", located, jh))
	} else if j := in.JVM; j != nil && j.HeapCommittedBytes > 0 {
		got := anon.take(j.HeapCommittedBytes)
		add(CatJVMHeap, got, j.HeapUsageFromSource, "medium",
			fmt.Sprintf("heap committed %d B (%s); its mappings are not located, so its pages are assumed resident", j.HeapCommittedBytes, j.HeapUsageFromSource))
	}

	if gh := in.classRSS(string(pmap.ClassGoHeap)); gh > 0 {
		ev := []string{fmt.Sprintf("Rss of the Go runtime's heap arenas (64 MiB-aligned reservations of a Go program; goroutine stacks included): %d B", gh)}
		if g := in.Go; g != nil {
			ev = append(ev, fmt.Sprintf("%s: HeapInuse %d B, HeapIdle %d B of which HeapReleased %d B, StackSys %d B", g.Source, g.HeapInuseBytes, g.HeapIdleBytes, g.HeapReleasedBytes, g.StackSysBytes))
		}
		add(CatGoHeap, anon.take(gh), "smaps", "medium", ev...)
	}

	if vh := in.classRSS(string(pmap.ClassV8Heap)); vh > 0 {
		ev := []string{fmt.Sprintf("Rss of %d V8 heap pages and code space (anonymous, 256 KiB-aligned below 2^46, where V8 places them): %d B", in.classMappings(string(pmap.ClassV8Heap)), vh)}
		if n := in.Node; n != nil {
			ev = append(ev, fmt.Sprintf("%s: heap total %d B, used %d B", n.Source, n.HeapTotalBytes, n.HeapUsedBytes))
		}
		add(CatV8Heap, anon.take(vh), "smaps", "medium", ev...)
	} else if n := in.Node; n != nil && n.HeapTotalBytes > 0 {
		got := anon.take(n.HeapTotalBytes)
		add(CatV8Heap, got, n.Source, "low",
			fmt.Sprintf("heap total %d B (%s); its pages are not located, so they are assumed resident", n.HeapTotalBytes, n.Source))
	}

	if py := in.Python; py != nil && py.ResidentBytes > 0 {
		// pymalloc mmaps its arenas itself: they are plain anonymous
		// mappings, never malloc's arenas or chunks.
		got := anon.take(min(py.ResidentBytes, in.classRSS("anon")))
		add(CatPyMalloc, got, py.Source, "high",
			fmt.Sprintf("%d pools of %d B in %d arenas, their pages in RAM: %d B (blocks in use %d B, free blocks %d B, empty pools %d B)", py.Pools, py.PoolBytes, py.Arenas, py.ResidentBytes, py.AllocatedBytes, py.FreeBlockBytes, py.EmptyPoolBytes))
	}

	if t := in.Trace; t != nil {
		add(CatLeaked, anon.take(t.AnonResidentBytes), t.Source+" joined with smaps", "high",
			fmt.Sprintf("%d anonymous mappings made in the trace and never unmapped, %d B of them resident now", t.Count, t.AnonResidentBytes))
	}

	// malloc's footprint: arena heaps (retained free + in use) and mmapped chunks.
	var inUse pool
	if m := in.Malloc; m != nil && m.Glibc() {
		retained := min(m.RetainedFreeBytes, arenaRSS)
		add(CatMallocFree, anon.take(retained), m.Source, "medium",
			fmt.Sprintf("Σ arena free − top chunks = %d B retained in free lists (capped by the %d B resident in arena and [heap] mappings)", m.RetainedFreeBytes, arenaRSS))
		inUse = pool{name: "malloc in use", left: m.InUseBytes + m.MmapBytes}
	} else if m != nil {
		inUse = pool{name: "malloc in use", left: m.InUseBytes}
	}
	jvmNative := func(c Category, n uint64, source string, evidence string) {
		// JVM native memory that malloc holds is carved out of malloc's
		// in-use bytes, so it is not counted twice.
		if in.Malloc != nil {
			n = inUse.take(n)
		}
		add(c, anon.take(n), source, "medium", evidence)
	}
	if j := in.JVM; j != nil {
		if j.DirectUsedBytes != nil {
			jvmNative(CatDirect, *j.DirectUsedBytes, j.DirectSource, fmt.Sprintf("direct buffer pool: %d B (%s), malloc'd", *j.DirectUsedBytes, j.DirectSource))
		}
		if j.HasNMT {
			var mallocPart, mmapPart, committed uint64
			weighed := false
			for _, c := range j.NMT {
				switch c.Name {
				case "Java Heap", "Other", "Shared class space":
					// the heap is counted above; Other holds the direct
					// buffers; the CDS archive is file-backed
					continue
				}
				mallocPart += c.MallocBytes + c.ArenaBytes
				committed += c.MmapCommittedBytes
				if c.MmapResidentBytes != nil {
					mmapPart += *c.MmapResidentBytes
					weighed = true
				} else {
					mmapPart += c.MmapCommittedBytes
				}
			}
			jvmNative(CatJVMNonHeap, mallocPart, "NMT", fmt.Sprintf("NMT malloc and arena of non-heap categories: %d B", mallocPart))
			if weighed {
				confidence := "medium"
				if j.NMTResidentSource == "pagemap" {
					confidence = "high"
				}
				add(CatJVMNonHeap, anon.take(mmapPart), "NMT detail ∩ "+j.NMTResidentSource, confidence,
					fmt.Sprintf("resident bytes (%s) of the committed regions of non-heap categories (metaspace, code cache, GC…): %d B of the %d B NMT calls committed", j.NMTResidentSource, mmapPart, committed))
			} else {
				// Committed is not resident, and NMT's mmap'd memory lives
				// in mappings of its own, never in malloc's arenas nor in
				// its mmapped chunks: the claim is capped by what those
				// mappings hold.
				outside := in.classRSS("anon", "jvm-native")
				if m := in.Malloc; m != nil {
					outside -= min(outside, m.MmapBytes)
				} else if j.DirectUsedBytes != nil {
					// Without malloc_info, the direct buffers stand for
					// malloc's mmapped chunks: large ones are.
					outside -= min(outside, *j.DirectUsedBytes)
				}
				claim := min(mmapPart, outside)
				add(CatJVMNonHeap, anon.take(claim), "NMT", "medium",
					fmt.Sprintf("NMT mmap committed of non-heap categories (metaspace, code cache, GC…): %d B, taken as resident up to the %d B resident in anonymous mappings outside malloc (its arenas and mmapped chunks): %d B (NativeMemoryTracking=detail lets smaps say exactly)", mmapPart, outside, claim))
			}
		} else if j.NonHeapCommitted > 0 {
			add(CatJVMNonHeap, anon.take(j.NonHeapCommitted), strings.Join(j.Sources, ", "), "low",
				fmt.Sprintf("non-heap committed %d B (metaspace, code cache); NMT is off, so GC and thread structures are not counted", j.NonHeapCommitted))
		}
	}
	if m := in.Malloc; m != nil && m.Glibc() {
		add(CatMallocInUse, anon.take(inUse.left), m.Source, "medium",
			fmt.Sprintf("Σ arena in use %d B + mmapped chunks %d B, less what the JVM accounts for inside malloc", m.InUseBytes, m.MmapBytes))
	} else if m != nil {
		add(CatMallocInUse, anon.take(inUse.left), m.Source, "medium",
			fmt.Sprintf("%s: %d B allocated by the application, less what the JVM accounts for inside malloc", m.Allocator, m.InUseBytes))
		// jemalloc and tcmalloc map their memory as plain anonymous
		// mappings, and their resident figure is a bound (pages of a size
		// class never written count as dirty once freed): what they keep
		// is what anonymous RSS leaves after what is in use.
		var parts []string
		for _, p := range m.Parts {
			parts = append(parts, fmt.Sprintf("%s %d B", p.Name, p.Bytes))
		}
		kept := anon.take(m.RetainedFreeBytes)
		add(CatMallocFree, kept, m.Source, "medium",
			fmt.Sprintf("%s keeps %d B beside what is in use: %s (its resident figure, an upper bound: %d B); %d B of it fit in the anonymous RSS left", m.Allocator, m.RetainedFreeBytes, strings.Join(parts, ", "), m.SystemCurrentBytes, kept))
	}
	if e := entries[CatMallocInUse]; e != nil && in.Record != nil {
		e.Evidence = append(e.Evidence, in.Record.Summary())
	}
	if n := in.Node; n != nil && in.Malloc == nil && n.ExternalBytes > 0 {
		// Buffers and ArrayBuffers are malloc'd: without the allocator's
		// statistics, Node.js's count of them stands for that part of
		// malloc's memory.
		got := anon.take(n.ExternalBytes)
		add(CatMallocInUse, got, n.Source, "low",
			fmt.Sprintf("external memory (Buffers, ArrayBuffers; malloc'd by Node.js) %d B, taken as resident up to the anonymous memory left: %d B", n.ExternalBytes, got))
	}
	unexplained := []string{fmt.Sprintf("anonymous resident memory no source accounts for: %d B", anon.left)}
	if anon.left > 0 {
		unexplained = append(unexplained, fmt.Sprintf("where it lies: %d B in glibc arena heaps and [heap], %d B in other anonymous mappings (Rss by pmap class)",
			arenaRSS, in.classRSS("anon")))
		if in.Malloc == nil && arenaRSS > 0 {
			unexplained = append(unexplained, "malloc_info would split the arena part into in use and retained free: add --capture-malloc-info or --malloc-info FILE")
		}
	}
	if unknown := r.RSSBytes - (file + shmem + stacks + kernel + anonRSS); unknown > 0 {
		unexplained = append(unexplained, fmt.Sprintf("Rss of mappings in classes this memdiag does not know: %d B", unknown))
		anon.left += unknown
	}
	// The remainder is exact arithmetic, but nothing explains it: it has
	// no confidence to give.
	add(CatUnexplained, anon.left, "RSS − everything above", "none", unexplained...)

	for _, c := range Categories() {
		if e := entries[c]; e != nil {
			if e.Evidence == nil {
				e.Evidence = []string{}
			}
			r.Attribution = append(r.Attribution, *e)
		} else if in.applies(c) {
			r.Unmeasured = append(r.Unmeasured, c)
		}
	}
	r.Findings = findings(in, r)
	if mismatch != nil {
		r.Findings = append([]finding.Finding{*mismatch}, r.Findings...)
	}
	return r
}

// mismatchedMalloc is a finding when the allocator's statistics cannot be
// this process's: glibc arenas holding more memory in use than the whole
// process has resident or swapped, or more arena memory than its arena
// and [heap] mappings span.
func (in *Inputs) mismatchedMalloc() *finding.Finding {
	m := in.Malloc
	if m == nil || !m.Glibc() {
		return nil
	}
	// glibc's arenas live in [heap], its arena heaps, and where brk
	// failed, plain anonymous mappings: their read-write size bounds what
	// the arenas can hold (system_mem counts only read-write memory).
	var swap, span uint64
	for _, c := range in.Classes {
		swap += c.SwapBytes
		if c.Class == "heap" || c.Class == string(pmap.ClassGlibcArena) || c.Class == string(pmap.ClassAnon) {
			span += c.ReadWriteBytes
		}
	}
	const slack = 1 << 20
	var why string
	switch {
	case m.InUseBytes > in.totalRSS()+swap+slack:
		why = fmt.Sprintf("its arenas hold %s in use, more than this process's whole RSS and swap (%s)", humanize.Bytes(m.InUseBytes), humanize.Bytes(in.totalRSS()+swap))
	case span > 0 && m.SystemCurrentBytes > span+slack:
		why = fmt.Sprintf("its arenas hold %s, more than this process's writable [heap], arena and anonymous mappings span (%s)", humanize.Bytes(m.SystemCurrentBytes), humanize.Bytes(span))
	default:
		return nil
	}
	return &finding.Finding{ID: "evidence-mismatch", Severity: finding.High, Bytes: m.SystemCurrentBytes,
		Summary:  fmt.Sprintf("the malloc_info given (%s) cannot be this process's: %s; it was left out of the attribution", m.Source, why),
		Evidence: []string{fmt.Sprintf("%s: arenas %d B, in use %d B; smaps (%s): RSS %d B, swap %d B, writable [heap], arena and anonymous mappings %d B", m.Source, m.SystemCurrentBytes, m.InUseBytes, in.Source, in.totalRSS(), swap, span)},
		Advice:   []string{"Give the malloc_info of the same process, taken at the same time as its smaps: memdiag explain --pid PID --capture-malloc-info takes both."}}
}

// withoutMalloc is a copy of in without its allocator statistics.
func (in *Inputs) withoutMalloc() *Inputs {
	c := *in
	c.Malloc = nil
	return &c
}

// mallocOutsideJVM is the finding of a JVM whose malloc'd memory in use
// exceeds what the JVM accounts for: malloc-in-use is what is left of
// malloc_info's in-use bytes once NMT's malloc and the direct buffers are
// carved out.
func mallocOutsideJVM(in *Inputs, bytes uint64, share float64) finding.Finding {
	sev := finding.Medium
	if share >= 0.25 {
		sev = finding.High
	}
	var nmtMalloc uint64
	for _, c := range in.JVM.NMT {
		nmtMalloc += c.MallocBytes
	}
	accounted := fmt.Sprintf("the JVM's own malloc per NMT, direct buffers included: %s", humanize.Bytes(nmtMalloc))
	if !in.JVM.HasNMT {
		accounted = "NMT is off, so this includes the JVM's own malloc, typically tens of MiB"
		if in.JVM.DirectUsedBytes == nil {
			accounted += ", and its direct buffers, which no source gave"
		}
	}
	return finding.Finding{ID: "malloc-outside-jvm", Severity: sev, Bytes: bytes,
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) of malloc'd memory is in use outside everything the JVM accounts for (%s)", humanize.Bytes(bytes), 100*share, accounted),
		Evidence: []string{fmt.Sprintf("%s: in use %d B + mmapped chunks %d B, less the JVM's own malloc (NMT) and direct buffers = %d B", in.Malloc.Source, in.Malloc.InUseBytes, in.Malloc.MmapBytes, bytes)},
		Advice: []string{
			"Native libraries allocate it: zlib under never-closed GZIPInputStream/Inflater/Deflater (jmap -histo:live PID | grep -i -e inflater -e deflater counts them), RocksDB's block cache, Netty's native allocators, any JNI library.",
			"Watch whether it grows (memdiag watch --pid PID --capture-malloc-info --interval 5m); to name the code, trace the arenas' growth (memdiag trace) or run the JVM with jemalloc's profiling (LD_PRELOAD=libjemalloc.so.2 MALLOC_CONF=prof:true) and read jeprof.",
		}}
}

// allocatorUnmeasured is the lead where jemalloc or tcmalloc is mapped and
// no statistics were given: the anonymous memory is that allocator's.
func allocatorUnmeasured(in *Inputs, plain uint64, share float64) finding.Finding {
	sev := finding.Medium
	if share >= 0.5 {
		sev = finding.High
	}
	how := "jemalloc: malloc_stats_print (MALLOC_CONF=stats_print:true prints it at exit), or mallctl from the program; Redis: MEMORY MALLOC-STATS (redis-cli) writes it"
	if in.Allocator == "tcmalloc" {
		how = "tcmalloc: MallocExtension::GetStats from the program, or MALLOCSTATS=1 at exit"
	}
	return finding.Finding{ID: "allocator-unmeasured", Severity: sev, Bytes: plain,
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) of anonymous memory is %s's, which maps its memory as plain anonymous mappings: in use by the program, or kept free by %s — its statistics tell which", humanize.Bytes(plain), 100*share, in.Allocator, in.Allocator),
		Evidence: []string{fmt.Sprintf("smaps: %s is mapped; Rss of anonymous mappings outside [heap] %d B, none of it explained", in.Allocator, in.classRSS("anon"))},
		Advice: []string{
			fmt.Sprintf("memdiag explain --pid PID --capture-malloc-info reads %s's statistics live (through gdb, or without it where gdb is missing or unsafe).", in.Allocator),
			"Or save them from the program and pass --malloc-info FILE: " + how + ".",
		}}
}

// applies reports whether category c can hold memory of this process, so
// that leaving it unmeasured is worth saying: the JVM's for a JVM, malloc's
// where an allocator's heap is mapped, the Go heap for a Go program, a
// trace's leaked mappings for any process.
func (in *Inputs) applies(c Category) bool {
	switch c {
	case CatJVMHeap, CatJVMNonHeap, CatDirect:
		return in.JVM != nil
	case CatMallocInUse, CatMallocFree:
		return in.classRSS("heap", string(pmap.ClassGlibcArena)) > 0 || in.Malloc != nil
	case CatGoHeap:
		return in.classMappings(string(pmap.ClassGoHeap)) > 0
	case CatPyMalloc:
		return in.Python != nil
	case CatV8Heap:
		return in.classMappings(string(pmap.ClassV8Heap)) > 0 || in.Node != nil
	case CatLeaked:
		return true
	}
	return false
}

// sharedMemoryFinding says where shared memory is most of RSS (a
// PostgreSQL backend and its shared buffers): summing RSS over the
// processes that map it counts it once per process; PSS does not.
func sharedMemoryFinding(in *Inputs, r *Result) (finding.Finding, bool) {
	shm := r.Bytes(CatShmem)
	if shm < 16<<20 || float64(shm) < 0.5*float64(r.RSSBytes) {
		return finding.Finding{}, false
	}
	share := 100 * float64(shm) / float64(r.RSSBytes)
	summary := fmt.Sprintf("%.0f %% of this RSS (%s) is shared memory other processes may map too", share, humanize.Bytes(shm))
	ev := []string{fmt.Sprintf("smaps: Rss of shmem mappings (SysV, memfd, /dev/shm, shared anonymous) %d B of %d B", shm, r.RSSBytes)}
	if pss := in.classPSS("shmem"); pss > 0 {
		sharers := float64(shm) / float64(pss)
		summary += fmt.Sprintf("; this process's proportional share of it is %s (PSS)", humanize.Bytes(pss))
		if sharers >= 1.5 {
			summary += fmt.Sprintf(", as if about %.0f processes mapped it", sharers)
		}
		ev = append(ev, fmt.Sprintf("smaps: Pss of the shmem mappings %d B; Σ Pss %d B", pss, r.PSSBytes))
	}
	advice := []string{
		"Summing RSS over the processes that map it counts it once per process: add PSS instead (memdiag top shows Σ PSS), or read the memory cgroup (memdiag cgroup), which counts it once.",
	}
	if in.Command == "postgres" {
		advice = append(advice, "For PostgreSQL it is shared_buffers (and the other shared structures: SELECT * FROM pg_shmem_allocations): sized by shared_buffers in postgresql.conf, not by this backend.")
	} else {
		advice = append(advice, "Its size is set by whoever creates it (a database's shared buffers, a cache in /dev/shm or a memfd): shrink it there; it is not this process's private memory.")
	}
	return finding.Finding{ID: "shared-memory", Severity: finding.Info, Bytes: shm, Summary: summary, Evidence: ev, Advice: advice}, true
}

// goHeapFinding says what the Go heap holds where it is a large part of
// RSS: from the program's MemStats, how much is idle and not returned.
func goHeapFinding(in *Inputs, resident uint64, share func(uint64) float64) (finding.Finding, bool) {
	if resident < 16<<20 || share(resident) < 0.10 {
		return finding.Finding{}, false
	}
	g := in.Go
	if g == nil {
		return finding.Finding{ID: "go-heap", Severity: finding.Medium, Bytes: resident,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is the Go runtime's heap; how much of it is live and how much the runtime holds idle is in the program's own runtime.MemStats, which no source gave", humanize.Bytes(resident), 100*share(resident)),
			Evidence: []string{fmt.Sprintf("smaps: Rss of the Go heap arenas %d B", resident)},
			Advice: []string{
				`Expose MemStats and pass it: import _ "expvar" (it serves /debug/vars on the program's http.DefaultServeMux), then memdiag explain --pid PID --expvar http://HOST:PORT/debug/vars.`,
				"Or read it in the program: runtime.ReadMemStats (HeapInuse, HeapIdle, HeapReleased), runtime/metrics (/memory/classes/heap/...), or /debug/pprof/heap for what is live by allocation site.",
			}}, true
	}
	idle := min(g.IdleNotReleasedBytes(), resident)
	if idle >= resident/4 && idle >= 16<<20 {
		sev := finding.Medium
		if share(idle) >= 0.5 {
			sev = finding.High
		}
		ev := []string{fmt.Sprintf("%s: HeapIdle %d B − HeapReleased %d B = %d B; HeapInuse %d B; Rss of the Go heap arenas %d B", g.Source, g.HeapIdleBytes, g.HeapReleasedBytes, g.IdleNotReleasedBytes(), g.HeapInuseBytes, resident)}
		bound := "to bound it, set GOMEMLIMIT (the runtime then collects and returns memory as the process nears the limit) or lower GOGC."
		if g.GOGCPercent != nil {
			limit := "no GOMEMLIMIT"
			if g.MemoryLimitBytes > 0 {
				limit = "GOMEMLIMIT " + humanize.Bytes(g.MemoryLimitBytes)
				if g.MemoryLimitBytes > resident {
					bound = fmt.Sprintf("GOMEMLIMIT (%s) is above this heap, so it does not press the runtime yet: set it nearer the memory the service should use, or lower GOGC.", humanize.Bytes(g.MemoryLimitBytes))
				}
			}
			ev = append(ev, fmt.Sprintf("%s: GOGC %d, %s", g.Source, *g.GOGCPercent, limit))
		}
		return finding.Finding{ID: "go-heap-idle", Severity: sev, Bytes: idle,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is Go heap the runtime holds idle and has not yet returned to the system: freed by the garbage collector, kept for reuse", humanize.Bytes(idle), 100*share(idle)),
			Evidence: ev,
			Advice: []string{
				"The runtime's background scavenger returns idle memory above what the heap goal needs slowly (about 1 % of one CPU's time), so it can stay for minutes; nothing is leaking.",
				"To return it at once, call debug.FreeOSMemory() in the program (after a burst, or from an admin endpoint); " + bound,
			}}, true
	}
	return finding.Finding{ID: "go-heap-live", Severity: finding.Medium, Bytes: min(g.HeapInuseBytes, resident),
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is Go heap in use (HeapInuse): live objects, or garbage not yet collected", humanize.Bytes(min(g.HeapInuseBytes, resident)), 100*share(min(g.HeapInuseBytes, resident))),
		Evidence: []string{fmt.Sprintf("%s: HeapInuse %d B, HeapAlloc %d B, next GC at %d B; idle not returned %d B", g.Source, g.HeapInuseBytes, g.HeapAllocBytes, g.NextGCBytes, g.IdleNotReleasedBytes())},
		Advice:   []string{"What holds it, by allocation site: go tool pprof -sample_index=inuse_space http://HOST:PORT/debug/pprof/heap (import _ \"net/http/pprof\"); compare two snapshots over time (memdiag diff) to tell growth from a working set."}}, true
}

// v8HeapFinding says what V8's heap holds where it is a large part of
// RSS: from the program's own accounting, live objects or free pages.
func v8HeapFinding(in *Inputs, resident uint64, share func(uint64) float64) (finding.Finding, bool) {
	if resident < 16<<20 || share(resident) < 0.10 {
		return finding.Finding{}, false
	}
	snapshot := "A heap snapshot names what holds it: start node with --heapsnapshot-signal=SIGUSR2 and send the signal (or call v8.writeHeapSnapshot()), take two some minutes apart and compare them in Chrome DevTools' Memory tab (Comparison view)."
	n := in.Node
	if n == nil {
		return finding.Finding{ID: "v8-heap", Severity: finding.Medium, Bytes: resident,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is the V8 JavaScript heap; how much of it holds live objects is in the program's own accounting, which no source gave", humanize.Bytes(resident), 100*share(resident)),
			Evidence: []string{fmt.Sprintf("smaps: Rss of the V8 heap pages %d B", resident)},
			Advice: []string{
				"Expose it and pass it: prom-client's collectDefaultMetrics() serves nodejs_heap_size_used_bytes and the rest on the program's /metrics; then memdiag explain --pid PID --prometheus http://HOST:PORT/metrics. In the program, v8.getHeapStatistics() and process.memoryUsage() say the same.",
				snapshot,
			}}, true
	}
	ev := fmt.Sprintf("%s: heap total %d B, used %d B, free %d B; Rss of the V8 heap pages %d B", n.Source, n.HeapTotalBytes, n.HeapUsedBytes, n.FreeBytes(), resident)
	if free := min(n.FreeBytes(), resident); free >= resident/2 && free >= 16<<20 {
		return finding.Finding{ID: "v8-heap-free", Severity: finding.Medium, Bytes: free,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is V8 heap no object occupies: pages the garbage collector freed and V8 keeps for the next allocations", humanize.Bytes(free), 100*share(free)),
			Evidence: []string{ev},
			Advice: []string{
				"Nothing is leaking: V8 gives pages back after memory-reducing collections, when the program is idle or near its heap limit. Half of new space is always empty (its semi-spaces): --max-semi-space-size bounds it.",
				"To bound the whole heap, set --max-old-space-size (MiB); the program then collects harder as it nears the limit, and fails with 'JavaScript heap out of memory' past it.",
			}}, true
	}
	used := min(n.HeapUsedBytes, resident)
	sev := finding.Medium
	if share(used) >= 0.5 {
		sev = finding.High
	}
	return finding.Finding{ID: "v8-heap-live", Severity: sev, Bytes: used,
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is JavaScript objects on the V8 heap (heap used): live, or garbage not yet collected", humanize.Bytes(used), 100*share(used)),
		Evidence: []string{ev},
		Advice:   []string{snapshot, "Compare two memdiag snapshots over time (memdiag diff) to tell growth from a working set; --max-old-space-size (MiB) caps the heap."}}, true
}

// nodeExternalFinding says where Buffers and ArrayBuffers, which Node.js
// mallocs outside V8's heap, are a large part of RSS.
func nodeExternalFinding(in *Inputs, share func(uint64) float64) (finding.Finding, bool) {
	n := in.Node
	if n == nil || n.ExternalBytes < 16<<20 || share(n.ExternalBytes) < 0.10 {
		return finding.Finding{}, false
	}
	sev := finding.Medium
	if share(n.ExternalBytes) >= 0.5 {
		sev = finding.High
	}
	return finding.Finding{ID: "node-external", Severity: sev, Bytes: n.ExternalBytes,
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is held by Buffers and ArrayBuffers outside the V8 heap (Node.js's external memory, malloc'd)", humanize.Bytes(n.ExternalBytes), 100*share(n.ExternalBytes)),
		Evidence: []string{fmt.Sprintf("%s: external %d B; heap total %d B", n.Source, n.ExternalBytes, n.HeapTotalBytes)},
		Advice: []string{
			"A heap snapshot shows the JavaScript objects that keep them (filter for ArrayBuffer, Buffer, Uint8Array and follow the retainers); they are freed only when those objects are collected.",
			"Buffering whole bodies or files is the usual cause: stream them (stream.pipeline) instead of collecting chunks with Buffer.concat.",
		}}, true
}

// pymallocFinding says what CPython's small-object arenas hold where they
// are a large part of RSS: objects in use, or free blocks and empty pools
// that keep arenas from being returned.
func pymallocFinding(in *Inputs, resident uint64, share func(uint64) float64) (finding.Finding, bool) {
	py := in.Python
	if py == nil || resident < 16<<20 || share(resident) < 0.10 {
		return finding.Finding{}, false
	}
	ev := []string{fmt.Sprintf("%s: %d pools in %d arenas; blocks in use %d B, free blocks in pools in use %d B, empty pools %d B; %d B of them in RAM", py.Source, py.Pools, py.Arenas, py.AllocatedBytes, py.FreeBlockBytes, py.EmptyPoolBytes, py.ResidentBytes)}
	if kept := min(py.RetainedBytes(), resident); kept >= 16<<20 && kept >= resident/4 {
		sev := finding.Medium
		if share(kept) >= 0.5 {
			sev = finding.High
		}
		return finding.Finding{ID: "pymalloc-retained", Severity: sev, Bytes: kept,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is free space CPython's small-object allocator keeps in its arenas: an arena goes back to the system only when every pool in it is empty", humanize.Bytes(kept), 100*share(kept)),
			Evidence: ev,
			Advice: []string{
				"Nothing leaks: pymalloc reuses it for new objects (empty pools for any size, free blocks for their own size). Objects that died unevenly pin their arenas, and gc.collect() does not move the survivors.",
				"In a long-running service, recycle workers (gunicorn --max-requests, Celery --max-tasks-per-child, uWSGI --max-requests), or build long-lived structures before short-lived ones so they share arenas; PYTHONMALLOC=malloc hands small objects to glibc's malloc instead (slower; memdiag trim can then return what is freed).",
			}}, true
	}
	used := min(py.AllocatedBytes, resident)
	sev := finding.Medium
	if share(used) >= 0.5 {
		sev = finding.High
	}
	return finding.Finding{ID: "pymalloc-live", Severity: sev, Bytes: used,
		Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is small Python objects in use: blocks CPython's small-object allocator has handed out", humanize.Bytes(used), 100*share(used)),
		Evidence: ev,
		Advice: []string{
			"What holds them, by line: start the program with python -X tracemalloc=25 (or call tracemalloc.start()), then compare tracemalloc.take_snapshot().statistics('traceback') at two moments; memray run gives the same as a flame graph.",
			"Compare two memdiag snapshots over time (memdiag diff) to tell growth from a working set.",
		}}, true
}

// noSource is the source of a category no input measured.
const noSource = "no source given"

func findings(in *Inputs, r *Result) []finding.Finding {
	var fs []finding.Finding
	share := func(n uint64) float64 { return float64(n) / float64(max(r.RSSBytes, 1)) }
	if in.Malloc != nil {
		fs = append(fs, in.Malloc.Findings...)
	}
	if in.Record != nil {
		fs = append(fs, in.Record.Findings...)
	}
	if t := in.Trace; t != nil && t.Count > 0 {
		// The trace's own finding counts address space; joined with smaps,
		// what matters is what is resident now.
		res := r.Bytes(CatLeaked)
		ev := []string{fmt.Sprintf("%s: %d anonymous mappings (%d B) made and never unmapped; %d B of them resident now (smaps)", t.Source, t.Count, t.AnonBytes, res)}
		for i, g := range t.Groups {
			if i == 5 {
				break
			}
			ev = append(ev, fmt.Sprintf("%d mappings, %d B mapped, %d B resident: %s", g.Count, g.Bytes, g.ResidentBytes, g.Key))
		}
		sev := finding.Info
		if res >= 64<<20 || share(res) >= 0.25 {
			sev = finding.Medium
		}
		top := ""
		if len(t.Groups) > 0 {
			top = fmt.Sprintf("; the leading group: %d from %s", t.Groups[0].Count, t.Groups[0].Key)
		}
		fs = append(fs, finding.Finding{ID: "leaked-mappings", Severity: sev, Bytes: res,
			Summary:  fmt.Sprintf("%s resident in %d mappings made during the trace and never unmapped (%s mapped)%s", humanize.Bytes(res), t.Count, humanize.Bytes(t.AnonBytes), top),
			Evidence: ev,
			Advice:   []string{"memdiag trace FILE --pprof leaks.pb.gz; go tool pprof -sample_index=resident -top leaks.pb.gz (with --pid PID) names the stacks."}})
	}
	if f, ok := sharedMemoryFinding(in, r); ok {
		fs = append(fs, f)
	}
	if f, ok := goHeapFinding(in, r.Bytes(CatGoHeap), share); ok {
		fs = append(fs, f)
	}
	if f, ok := v8HeapFinding(in, r.Bytes(CatV8Heap), share); ok {
		fs = append(fs, f)
	}
	if f, ok := nodeExternalFinding(in, share); ok {
		fs = append(fs, f)
	}
	if f, ok := pymallocFinding(in, r.Bytes(CatPyMalloc), share); ok {
		fs = append(fs, f)
	}
	un := r.Bytes(CatUnexplained)
	untracked := in.JVM != nil && un >= 64<<20 && share(un) >= 0.10
	// For a JVM, untracked-native says the same and more.
	if arenas := in.classRSS("heap", "glibc-arena"); in.Malloc == nil && !untracked && un > 0 && arenas >= 16<<20 && share(arenas) >= 0.10 {
		// Without malloc_info the arenas' memory is unexplained; where it
		// is most of RSS, the next step is to look inside them.
		sev := finding.Medium
		if share(arenas) >= 0.5 {
			sev = finding.High
		}
		fs = append(fs, finding.Finding{ID: "malloc-unmeasured", Severity: sev, Bytes: min(arenas, un),
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) lies in glibc malloc arenas, which no malloc_info explains: memory in use, or freed and kept by glibc", humanize.Bytes(arenas), 100*share(arenas)),
			Evidence: []string{fmt.Sprintf("smaps: Rss of [heap] and glibc arena heaps %d B; unexplained %d B", arenas, un)},
			Advice: []string{
				"memdiag explain --pid PID --capture-malloc-info (it reads the arenas from the process's memory, its threads stopped for milliseconds), or --malloc-info FILE with a saved malloc_info: it splits this into memory in use and free memory glibc retains.",
			}})
	}
	if mu := r.Bytes(CatMallocInUse); in.JVM != nil && in.Malloc != nil && mu >= 64<<20 && share(mu) >= 0.10 {
		fs = append(fs, mallocOutsideJVM(in, mu, share(mu)))
	}
	if plain := min(un, in.classRSS("anon")); in.JVM == nil && in.Malloc == nil && plain >= 16<<20 && share(plain) >= 0.10 &&
		(in.Allocator == "jemalloc" || in.Allocator == "tcmalloc") {
		fs = append(fs, allocatorUnmeasured(in, plain, share(plain)))
	} else if in.JVM == nil && plain >= 16<<20 && share(plain) >= 0.10 {
		// Outside malloc's arenas, and no trace says who mapped it.
		sev := finding.Medium
		if share(plain) >= 0.5 {
			sev = finding.High
		}
		advice := []string{"Trace who maps it: strace -f -k -e trace=memory -p PID -o t.strace, then memdiag trace t.strace --pid PID names the stacks of what stays mapped (or perf trace, bpftrace: see docs/trace.md)."}
		if in.Malloc == nil {
			advice = append(advice, "malloc's large blocks are mmapped too: --capture-malloc-info tells them apart (its mmapped chunks).")
		}
		fs = append(fs, finding.Finding{ID: "anon-unexplained", Severity: sev, Bytes: plain,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) of anonymous memory outside malloc's arenas is unexplained: mapped directly, or large malloc blocks", humanize.Bytes(plain), 100*share(plain)),
			Evidence: []string{fmt.Sprintf("smaps: Rss of anonymous mappings outside arenas and [heap] %d B; unexplained %d B", in.classRSS("anon"), un)},
			Advice:   advice})
	}
	if untracked {
		j := in.JVM
		sev := finding.Medium
		if share(un) >= 0.3 {
			sev = finding.High
		}
		advice := []string{
			"Native memory outside every JVM bean: zlib (never-closed GZIPInputStream/Inflater/Deflater), JNI libraries, RocksDB, glibc arenas. Capture malloc_info (--capture-malloc-info) to see whether it is malloc'd, and trace mmap (memdiag trace) to see who maps it.",
		}
		if !j.HasNMT {
			advice = append(advice, "Restart with -XX:NativeMemoryTracking=summary to split what the JVM itself allocates natively.")
		}
		fs = append(fs, finding.Finding{ID: "untracked-native", Severity: sev, Bytes: un,
			Summary:  fmt.Sprintf("%s (%.0f %% of RSS) is native memory the JVM does not account for", humanize.Bytes(un), 100*share(un)),
			Evidence: []string{fmt.Sprintf("RSS %d B − JVM heap %d B − JVM non-heap %d B − direct buffers %d B − other categories = %d B unexplained", r.RSSBytes, r.Bytes(CatJVMHeap), r.Bytes(CatJVMNonHeap), r.Bytes(CatDirect), un)},
			Advice:   advice})
	}
	if j := in.JVM; j != nil && j.DirectUsedBytes != nil && j.MaxDirectBytes != nil && *j.MaxDirectBytes > 0 &&
		float64(*j.DirectUsedBytes) >= 0.9*float64(*j.MaxDirectBytes) {
		fs = append(fs, finding.Finding{ID: "direct-buffers-near-max", Severity: finding.High, Bytes: *j.DirectUsedBytes,
			Summary:  fmt.Sprintf("direct buffers use %s of MaxDirectMemorySize %s", humanize.Bytes(*j.DirectUsedBytes), humanize.Bytes(*j.MaxDirectBytes)),
			Evidence: []string{j.DirectSource},
			Advice:   []string{"Find who allocates them (heap dump: java.nio.DirectByteBuffer referents); raise -XX:MaxDirectMemorySize only once the growth is understood."}})
	}
	if j := in.JVM; j != nil && j.HeapMaxBytes != nil && *j.HeapMaxBytes > 0 && float64(j.HeapUsedBytes) >= 0.9*float64(*j.HeapMaxBytes) {
		fs = append(fs, finding.Finding{ID: "heap-near-max", Severity: finding.High, Bytes: j.HeapUsedBytes,
			Summary:  fmt.Sprintf("the Java heap uses %s of its %s maximum", humanize.Bytes(j.HeapUsedBytes), humanize.Bytes(*j.HeapMaxBytes)),
			Evidence: []string{j.HeapUsageFromSource},
			Advice:   []string{"Compare snapshots over time (memdiag diff) to tell a leak from a working set; a heap dump names the structure that grows."}})
	}
	if n := in.classMappings("thread-stack"); n >= 500 {
		fs = append(fs, finding.Finding{ID: "many-threads", Severity: finding.Info, Bytes: r.Bytes(CatThreadStacks),
			Summary:  fmt.Sprintf("%d thread stacks (%s resident)", n, humanize.Bytes(r.Bytes(CatThreadStacks))),
			Evidence: []string{"smaps: thread-stack mappings"},
			Advice:   []string{"Each thread reserves a stack (8 MiB by default) and may bring its own malloc arena: pool threads, or lower -Xss/ulimit -s."}})
	}
	var thp uint64
	for _, c := range in.Classes {
		thp += c.AnonHugeBytes
	}
	if thp >= 256<<20 && share(thp) >= 0.25 {
		fs = append(fs, finding.Finding{ID: "thp", Severity: finding.Info, Bytes: thp,
			Summary:  fmt.Sprintf("%s of RSS is in transparent huge pages", humanize.Bytes(thp)),
			Evidence: []string{"smaps: AnonHugePages"},
			Advice:   []string{"THP can inflate RSS of sparse heaps and arenas: check /sys/kernel/mm/transparent_hugepage/enabled (madvise is the safer setting)."}})
	}
	finding.Sort(fs)
	return fs
}
