package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/report"
)

// mallocInfoMemoryLimit is the soft memory limit of `memdiag mallocinfo`.
const mallocInfoMemoryLimit = 40 << 20

// MallocInfoOptions is `memdiag mallocinfo` after flag parsing.
type MallocInfoOptions struct {
	Streams  *Streams
	ProcRoot string

	File       string // a malloc_info document or log; "-" for stdin
	PID        int    // capture live instead (0: read File)
	Format     report.Format
	Color      bool
	Width      int // what tables must fit in (0: no limit)
	Thresholds mallocinfo.Thresholds
	AllArenas  bool
	// AllSteps lists every snapshot of a series, not a summary.
	AllSteps bool
	Timeout  time.Duration
	// Save, with PID, keeps the captured document as the process wrote it.
	Save string
	// UseGDB and NoStop choose how glibc's malloc_info is captured: see
	// mallocinfo.Capturer.
	UseGDB, NoStop bool

	sniffed   io.Reader    // File, opened and sniffed
	closeFile func() error // closes File when it was opened
}

// NewCmdMallocInfo builds `memdiag mallocinfo`.
func NewCmdMallocInfo(d *Deps, g *globalOptions, runF func(*MallocInfoOptions) error) *cobra.Command {
	o := &MallocInfoOptions{Streams: d.Streams, ProcRoot: d.ProcRoot}
	defaults := mallocinfo.DefaultThresholds(runtime.NumCPU())
	var minRetained string
	c := &cobra.Command{
		Use:   "mallocinfo FILE | --pid PID",
		Short: "The allocator's account (glibc arenas, jemalloc, tcmalloc): in use, kept free, over time",
		Long: `Explain glibc malloc_info(3) XML: per arena, what is in use, what sits in
free lists (fast bins, the rest) and the top chunk, and how much free memory
is retained where automatic trimming cannot return it (free − top).

FILE holds one <malloc> document, or a log with many (written at intervals
among other lines): every document is read, in order, and the arenas are
followed across them. "-" reads standard input.

FILE may also hold jemalloc's malloc_stats_print output (JSON or text) or
tcmalloc's GetStats text: the format is sniffed.

--pid PID reads a live process. For glibc nothing runs in the process:
memdiag stops its threads (PTRACE_SEIZE and PTRACE_INTERRUPT, no signal, no
register touched), reads its arenas from its memory and resumes it — a few
milliseconds, printed on stderr — and shows what its malloc_info would have
said at that instant. --no-stop reads without stopping it (the figures may
be torn); --gdb asks the process's own malloc_info through gdb instead.
jemalloc (mallctl) and tcmalloc (GetStats) are asked through gdb, which
writes into a buffer it maps in the process, copies it out over a pipe and
detaches; the process is paused while gdb is attached, and --timeout
interrupts the call. Needs ptrace permission: the same uid with
kernel.yama.ptrace_scope 0, or CAP_SYS_PTRACE (root).

-o html writes one self-contained HTML page: each arena as a bar of in use,
retained free and top chunk; over a log, each arena across the documents
(docs/html.md).`,
		Example: `  memdiag mallocinfo malloc_info.xml
  memdiag mallocinfo app.log -o json | jq '.findings'
  memdiag mallocinfo jemalloc-stats.json
  memdiag mallocinfo --pid 1234`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case o.PID != 0 && len(args) > 0:
				return usage(errors.New("give a FILE or --pid, not both"))
			case o.PID == 0 && len(args) != 1:
				return usage(fmt.Errorf("mallocinfo needs one FILE (or - or --pid PID), got %d arguments", len(args)))
			case o.PID < 0:
				return usage(fmt.Errorf("--pid %d is not a process id", o.PID))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			var err error
			if o.Format, err = g.formatWith(report.FormatHTML); err != nil {
				return err
			}
			o.Color = d.Streams.colorEnabled(g.noColor)
			o.Width = d.Streams.tableWidth(g.wide)
			if err := o.validate(minRetained, c.Flags().Changed("cores")); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			return runMallocInfo(o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.PID, "pid", 0, "read the allocator's statistics of this live process (glibc: from its memory, its threads stopped for milliseconds)")
	f.BoolVar(&o.UseGDB, "gdb", false, "with --pid: ask glibc's own malloc_info through gdb instead of reading the process's memory (runs code in the process)")
	f.BoolVar(&o.NoStop, "no-stop", false, "with --pid: read glibc's arenas without stopping the process (the figures may be torn)")
	f.Float64Var(&o.Thresholds.RetainedShare, "retained-share", defaults.RetainedShare, "report arena retention at this share of arena memory retained free")
	f.StringVar(&minRetained, "min-retained", "16MiB", "report arena retention only when at least this much is retained free (with --retained-share)")
	f.Float64Var(&o.Thresholds.MostlyFreeShare, "mostly-free", defaults.MostlyFreeShare, "name arenas at least this share free")
	// No default in the flag itself: help would show this host's count as
	// the default for a file too, where it is unknown.
	f.IntVar(&o.Thresholds.Cores, "cores", 0, "cores of the process's host (glibc allows 8 arenas per core); default: this host's for --pid, unknown for a file")
	f.IntVar(&o.Thresholds.ArenaMax, "arena-max", 0, "MALLOC_ARENA_MAX of the process, when set")
	f.BoolVar(&o.AllArenas, "all-arenas", false, "list every arena (default: the 20 retaining most)")
	f.BoolVar(&o.AllSteps, "all", false, "over time: list every snapshot of a log (default: a summary of the telling ones when there are more than 20)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "with --pid: interrupt the capture after this long")
	f.StringVar(&o.Save, "save", "", "with --pid: also write the captured malloc_info XML to this file, as the process wrote it")
	return c
}

// validate checks the flags that depend on each other, and reads
// --min-retained.
func (o *MallocInfoOptions) validate(minRetained string, coresGiven bool) error {
	var err error
	if o.Thresholds.RetainedMinBytes, err = humanize.ParseBytes(minRetained); err != nil {
		return usage(fmt.Errorf("--min-retained: %w", err))
	}
	if o.Thresholds.RetainedShare <= 0 || o.Thresholds.RetainedShare > 1 {
		return usage(fmt.Errorf("--retained-share must be in (0, 1], got %v", o.Thresholds.RetainedShare))
	}
	if (o.UseGDB || o.NoStop) && o.PID == 0 {
		return usage(errors.New("--gdb and --no-stop say how --pid is read: they need --pid"))
	}
	if o.UseGDB && o.NoStop {
		return usage(errors.New("--no-stop reads the process's memory; --gdb asks the process itself: give one"))
	}
	if o.Save != "" && o.PID == 0 {
		return usage(errors.New("--save keeps a live capture: it needs --pid"))
	}
	if o.PID != 0 && !coresGiven {
		// A saved document may come from another machine: only a live
		// capture knows the cores behind glibc's arena limit.
		o.Thresholds.Cores = mallocinfo.DefaultThresholds(runtime.NumCPU()).Cores
	}
	return nil
}

func runMallocInfo(o *MallocInfoOptions) error {
	// What is live is a few documents and the series, however long the
	// log; garbage is every document decoded. A soft limit keeps the
	// garbage from growing the heap past it (GOGC=400 otherwise lets it
	// reach five times what is live). GOMEMLIMIT, when set, is the user's.
	if o.Streams.Getenv == nil || o.Streams.Getenv("GOMEMLIMIT") == "" {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(mallocInfoMemoryLimit))
	}
	done, err := otherAllocator(o)
	if o.closeFile != nil {
		defer o.closeFile()
	}
	if done || err != nil {
		return err
	}
	v := &report.MallocInfoView{ArenaLimit: 20, AllSteps: o.AllSteps}
	if o.AllArenas {
		v.ArenaLimit = 0
	}
	if o.PID != 0 {
		v.PID = o.PID
		v.Source = o.capturer().Source(o.PID)
	} else {
		v.Source = o.File
	}
	out := report.NewMallocInfoWriter(o.Streams.Out, o.Format, report.Style{Color: o.Color, Width: o.Width}, v.Source, v.PID)
	series := mallocinfo.NewSeries()
	// Each snapshot goes to the writer as it is read: memory holds one
	// document and the series, however long the log.
	add := func(s *mallocinfo.Snapshot) error {
		v.Last = s
		v.Snapshots++
		series.Add(s)
		return out.Add(s)
	}
	if o.PID != 0 {
		ctx, stop := interruptible()
		defer stop()
		doc, err := o.capturer().CaptureDocument(ctx, o.PID)
		if err != nil {
			return err
		}
		if o.Save != "" {
			// Kept before it is read: a document memdiag cannot parse is
			// the one worth keeping.
			if err := atomicfile.Write(o.Save, 0o644, func(w io.Writer) error { _, err := w.Write(doc); return err }); err != nil {
				return fmt.Errorf("saving the document to %s: %w", o.Save, err)
			}
		}
		info, err := mallocinfo.Parse(bytes.NewReader(doc), v.Source)
		if err != nil {
			return err
		}
		if err := add(mallocinfo.Analyze(info)); err != nil {
			return err
		}
	} else {
		if err := mallocinfo.ScanSnapshots(o.sniffed, o.File, add); err != nil {
			return err
		}
	}
	v.Findings = mallocinfo.Findings(v.Last, o.Thresholds, v.Source)
	if v.Snapshots > 1 {
		v.Series = series
		v.Findings = append(v.Findings, series.Findings(o.Thresholds, v.Source)...)
		finding.Sort(v.Findings)
	}
	return out.Finish(v)
}

// capturer is how --pid is captured for glibc.
func (o *MallocInfoOptions) capturer() mallocinfo.Capturer {
	return mallocinfo.Capturer{UseGDB: o.UseGDB, NoStop: o.NoStop, ProcRoot: o.ProcRoot, Timeout: o.Timeout, Notify: notifier(o.Streams.ErrOut)}
}

// otherAllocator handles statistics of jemalloc and tcmalloc: a file in
// their formats, or a live process that uses one. done is false for glibc's
// malloc_info, which runMallocInfo reads on; o.sniffed is then the file.
func otherAllocator(o *MallocInfoOptions) (done bool, err error) {
	var s *allocator.Stats
	if o.PID != 0 {
		d, err := allocator.Detect(proc.NewFS(o.ProcRoot), o.PID)
		if err != nil {
			return true, err
		}
		if d.Kind != allocator.Jemalloc && d.Kind != allocator.Tcmalloc {
			return false, nil
		}
		if o.Save != "" {
			return true, usage(fmt.Errorf("--save keeps glibc's malloc_info document; process %d uses %s, whose statistics memdiag reads value by value (for a file: MALLOC_CONF=stats_print:true for jemalloc, MALLOCSTATS=1 for tcmalloc, printed at exit)", o.PID, d.Kind))
		}
		ctx, stop := interruptible()
		defer stop()
		live := collect.LiveAllocator(o.ProcRoot, o.Timeout, notifier(o.Streams.ErrOut))
		if s, err = live.Capture(ctx, o.PID, d); err != nil {
			return true, err
		}
	} else {
		var rest io.Reader
		if s, rest, o.closeFile, err = collect.OpenAllocatorStats(o.File, o.Streams.In); err != nil {
			return true, err
		}
		if s == nil {
			o.sniffed = rest // glibc's malloc_info, read on from it
			return false, nil
		}
	}
	return true, report.WriteAllocator(o.Streams.Out, o.Format, s, allocator.Findings(s), report.Style{Color: o.Color, Width: o.Width})
}
