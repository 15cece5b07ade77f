package cmd

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/report"
)

// mallocInfoMemoryLimit is the soft memory limit of `memdiag mallocinfo`.
const mallocInfoMemoryLimit = 40 << 20

// MallocInfoOptions is `memdiag mallocinfo` after flag parsing.
type MallocInfoOptions struct {
	Streams *Streams
	// File is a malloc_info document or log ("-" for stdin); PID, when
	// not 0, is captured live instead.
	collect.AllocatorRequest
	Format     report.Format
	Style      report.Style
	Thresholds mallocinfo.Thresholds
	AllArenas  bool
	// AllSteps lists every snapshot of a series, not a summary.
	AllSteps bool
}

// NewCmdMallocInfo builds `memdiag mallocinfo`.
func NewCmdMallocInfo(d *Deps, g *globalOptions, runF func(*MallocInfoOptions) error) *cobra.Command {
	o := &MallocInfoOptions{Streams: d.Streams, AllocatorRequest: collect.AllocatorRequest{Proc: d.Proc, In: d.Streams.In}}
	defaults := mallocinfo.DefaultThresholds(runtime.NumCPU())
	var minRetained string
	c := &cobra.Command{
		Use:   "mallocinfo FILE | --pid PID",
		Short: "The allocator's account (glibc arenas, jemalloc, tcmalloc): in use, kept free, over time",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case o.PID != 0 && len(args) > 0:
				return usage(errors.New("give a FILE or --pid, not both"))
			case o.PID == 0 && len(args) != 1:
				return usage(fmt.Errorf("mallocinfo needs one FILE (or - or --pid PID), got %d arguments", len(args)))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			if err := o.validate(minRetained, c.Flags().Changed("cores")); err != nil {
				return err
			}
			return runOr(runF, runMallocInfo, o)
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
	defer o.Streams.SoftMemoryLimit(mallocInfoMemoryLimit)()
	ctx, stop := interruptibleIf(o.PID != 0)
	defer stop()
	o.Notify = notifier(o.Streams.ErrOut)
	a, err := collect.OpenAllocator(ctx, o.AllocatorRequest)
	if errors.Is(err, collect.ErrSaveNotGlibc) {
		return usage(err)
	}
	if err != nil {
		return err
	}
	defer a.Close()
	if a.Other != nil {
		return report.WriteAllocator(o.Streams.Out, o.Format, a.Other, allocator.Findings(a.Other), o.Style)
	}
	v := &report.MallocInfoView{ArenaLimit: 20, AllSteps: o.AllSteps, PID: a.PID, Source: a.Source}
	if o.AllArenas {
		v.ArenaLimit = 0
	}
	out := report.NewMallocInfoWriter(o.Streams.Out, o.Format, o.Style, v.Source, v.PID)
	if err := a.Scan(ctx, v, o.Thresholds, out.Add); err != nil {
		return err
	}
	return out.Finish(v)
}
