package cmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/report"
)

// RecordOptions is `memdiag record` after flag parsing.
type RecordOptions struct {
	Streams *Streams
	Format  report.Format
	Color   bool
	collect.RecordingRequest
}

// NewCmdRecord builds `memdiag record`.
func NewCmdRecord(d *Deps, g *globalOptions, runF func(*RecordOptions) error) *cobra.Command {
	o := &RecordOptions{Streams: d.Streams}
	var ring, minSize, sampleBytes string
	c := &cobra.Command{
		Use:   "record (--pid PID | -- COMMAND [ARG...])",
		Short: "Record allocations live with eBPF: what is outstanding, by call stack",
		Args:  o.checkArgs,
		RunE: func(c *cobra.Command, args []string) error {
			o.Command = args
			var err error
			if o.Format, err = g.format(c); err != nil {
				return err
			}
			if o.Format == report.FormatHTML && o.Options.Interval > 0 {
				return usage(errors.New("-o html writes one page when the recording ends: --interval has no page to show"))
			}
			o.Color = d.Streams.ColorEnabled(g.noColor)
			if err := o.parseSizes(minSize, sampleBytes, ring); err != nil {
				return err
			}
			return runOr(runF, runRecord, o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.Options.PID, "pid", 0, "the process to record")
	f.DurationVar(&o.Options.Duration, "duration", 0, "stop after this long (default: at Ctrl-C, SIGTERM or the process's exit)")
	f.DurationVar(&o.Options.Interval, "interval", 0, "also show what is outstanding at this period")
	f.StringVar(&o.PprofPath, "pprof", "", "write the allocations as a gzipped pprof heap profile (inuse_space, inuse_objects, alloc_space)")
	f.StringVar(&ring, "ring-buffer", "16M", "size of the kernel's ring buffer of events (rounded up to a power of two)")
	f.IntVar(&o.Options.MaxOutstanding, "max-outstanding", record.DefaultMaxOutstanding, "allocations held at once; past it the oldest are summarised by stack")
	f.IntVar(&o.Options.StackSlots, "stack-slots", record.DefaultStackSlots, "distinct stacks the kernel's table holds")
	f.StringVar(&minSize, "min-size", "", "ignore allocations smaller than this, in the kernel")
	f.StringVar(&sampleBytes, "sample-bytes", "", "record one allocation per this many bytes allocated on average, weighted (e.g. 512K)")
	f.BoolVar(&o.Options.FollowForks, "follow-forks", false, "record the processes it forks too, each with its own probes and stacks (PID column)")
	f.BoolVar(&o.Options.NoMappings, "no-mappings", false, "do not trace mmap, munmap, mremap and brk")
	f.IntVar(&o.StackLimit, "top", 20, "stacks to list in tables")
	return c
}

// checkArgs takes --pid or a command after --, not both.
func (o *RecordOptions) checkArgs(c *cobra.Command, args []string) error {
	dash := c.ArgsLenAtDash()
	switch {
	case dash < 0 && len(args) > 0:
		return usage(fmt.Errorf("unexpected argument %q: a command to record goes after --", args[0]))
	case dash > 0:
		return usage(fmt.Errorf("unexpected argument %q before --", args[0]))
	case o.Options.PID == 0 && len(args) == 0:
		return usage(errors.New("record needs --pid PID or -- COMMAND"))
	case o.Options.PID != 0 && len(args) > 0:
		return usage(errors.New("give --pid or a command after --, not both"))
	}
	return nil
}

// parseSizes reads the size flags into o.Options.
func (o *RecordOptions) parseSizes(minSize, sampleBytes, ring string) error {
	var err error
	for _, f := range []struct {
		flag, v string
		into    *uint64
	}{{"--min-size", minSize, &o.Options.MinSize}, {"--sample-bytes", sampleBytes, &o.Options.SampleBytes}} {
		if f.v == "" {
			continue
		}
		if *f.into, err = humanize.ParseBytes(f.v); err != nil {
			return usage(fmt.Errorf("%s %q: %w", f.flag, f.v, err))
		}
	}
	n, err := humanize.ParseBytes(ring)
	if err != nil || n < 4096 || n > 1<<30 {
		return usage(fmt.Errorf("--ring-buffer %q: want a size from 4K to 1G", ring))
	}
	o.Options.RingBytes = int(n)
	if o.Options.Duration < 0 || o.Options.Interval < 0 {
		return usage(errors.New("--duration and --interval must not be negative"))
	}
	return nil
}

func runRecord(o *RecordOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	style := report.Style{Color: o.Color}
	if o.Options.Interval > 0 {
		o.Options.OnInterval = func(r *record.Result) {
			_ = report.WriteRecord(o.Streams.Out, o.Format, &report.RecordView{Result: r, StackLimit: o.StackLimit}, style)
		}
	}
	r := o.RecordingRequest
	r.Stdin, r.Output = o.Streams.In, o.Streams.ErrOut
	v, err := collect.Recording(ctx, &r)
	if err != nil {
		return err
	}
	return report.WriteRecord(o.Streams.Out, o.Format, v, style)
}
