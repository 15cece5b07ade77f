package cmd

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/report"
	"github.com/memdiag/memdiag/syscalltrace"
)

// TraceOptions is `memdiag trace` after flag parsing.
type TraceOptions struct {
	Streams *Streams
	collect.TraceRequest
	Format report.Format
	Style  report.Style
}

// NewCmdTrace builds `memdiag trace`.
func NewCmdTrace(d *Deps, g *globalOptions, runF func(*TraceOptions) error) *cobra.Command {
	o := &TraceOptions{Streams: d.Streams, TraceRequest: collect.TraceRequest{Proc: d.Proc, In: d.Streams.In}}
	var format, groupBy, at string
	c := &cobra.Command{
		Use:   "trace FILE... ",
		Short: "Mappings made and never released, by whom, from a syscall trace",
		Args:  argCount(1, -1, "trace needs a FILE (or a directory of strace -ff files, or -)"),
		RunE: func(c *cobra.Command, args []string) error {
			o.Paths = args
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			if err := o.parse(format, groupBy, at); err != nil {
				return err
			}
			return runOr(runF, runTrace, o)
		},
	}
	f := c.Flags()
	f.StringVar(&format, "format", "", "trace format: strace, perf-trace, sysdig, sysdig-json or bpftrace (default: detected)")
	f.StringVar(&groupBy, "group-by", "", "group outstanding mappings by stack, leaf, size, thread or flags (default: stack if the trace has stacks, else size)")
	f.StringVar(&at, "at", "", "replay only up to this time (as the trace prints it)")
	f.StringVar(&o.PprofPath, "pprof", "", "write outstanding mappings by stack as a gzipped pprof profile")
	f.StringVar(&o.SmapsPath, "smaps", "", "join with this smaps capture: weigh each mapping by its resident bytes")
	f.IntVar(&o.PID, "pid", 0, "join with the live smaps of this process")
	f.BoolVar(&o.PerProcess, "per-process", false, "give every task its own address space")
	f.IntVar(&o.Top, "top", 20, "groups to list in tables")
	return c
}

// parse checks the flags that name a value from a list, and --at.
func (o *TraceOptions) parse(format, groupBy, at string) error {
	var err error
	if o.Trace, err = syscalltrace.ParseFormat(format); err != nil {
		return usage(fmt.Errorf("--format: %w", err))
	}
	if o.GroupBy, err = syscalltrace.ParseGroupBy(groupBy); err != nil {
		return usage(fmt.Errorf("--group-by: %w", err))
	}
	if at != "" {
		if o.At, o.HasAt = syscalltrace.ParseTime(at); !o.HasAt {
			return usage(fmt.Errorf("--at %q: want seconds (12.5, 1700000000.25) or HH:MM:SS[.frac] as the trace prints them", at))
		}
	}
	if o.PID != 0 && o.SmapsPath != "" {
		return usage(errors.New("--pid and --smaps both give the smaps to join: give one"))
	}
	return nil
}

func runTrace(o *TraceOptions) error {
	if o.Streams.ErrIsTTY {
		o.Progress = report.ProgressOf(o.Streams.ErrOut, "reading "+strings.Join(o.Paths, " "))
	}
	v, err := collect.Trace(&o.TraceRequest)
	if err != nil {
		return err
	}
	return report.WriteTrace(o.Streams.Out, o.Format, v, o.Style)
}
