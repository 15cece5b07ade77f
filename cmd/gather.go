package cmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/proc"
)

// GatherOptions say where explain, snapshot and watch find their
// evidence: the request to package collect, from flags.
type GatherOptions struct {
	collect.Request
	jolokiaCredFile string
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
	return jolokiaOptions(&o.Jolokia, o.jolokiaCredFile, o.Timeout, getenv)
}

// gather reads the evidence o names (see collect.Inputs); waits are told
// on stderr.
func gather(ctx context.Context, o *GatherOptions, fsys proc.FS, stderr io.Writer) (in *explain.Inputs, failed []string, err error) {
	r := o.Request
	r.Proc, r.Notify = fsys, notifier(stderr)
	return collect.Inputs(ctx, &r)
}
