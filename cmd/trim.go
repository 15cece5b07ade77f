package cmd

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/report"
)

// TrimOptions is `memdiag trim` after flag parsing.
type TrimOptions struct {
	Streams *Streams
	collect.TrimRequest
	Format report.Format
	Style  report.Style
}

// NewCmdTrim builds `memdiag trim`.
func NewCmdTrim(d *Deps, g *globalOptions, runF func(*TrimOptions) error) *cobra.Command {
	o := &TrimOptions{Streams: d.Streams, TrimRequest: collect.TrimRequest{Proc: d.Proc}}
	c := &cobra.Command{
		Use:   "trim --pid PID",
		Short: "Make a process's allocator give its free memory back, and measure what came back",
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) > 0:
				return usage(fmt.Errorf("trim takes --pid PID, not arguments (got %q)", args[0]))
			case o.PID <= 0:
				return usage(errors.New("trim needs --pid PID"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			return runOr(runF, runTrim, o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.PID, "pid", 0, "the process to trim")
	f.BoolVar(&o.DryRun, "dry-run", false, "say what would be called, and how, and do nothing")
	f.BoolVar(&o.NoJVM, "no-jvm", false, "for a JVM: call its allocator through gdb, not System.trim_native_heap")
	f.BoolVar(&o.NoGDB, "no-gdb", false, "call the allocator in one thread of the process with ptrace, not through gdb (proven first on a process of memdiag's own; also used where gdb is missing)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "interrupt a call that has not returned after this long")
	return c
}

func runTrim(o *TrimOptions) error {
	o.Notify = notifier(o.Streams.ErrOut)
	t, err := collect.PlanTrim(o.TrimRequest)
	if err != nil {
		return err
	}
	if !o.DryRun {
		ctx, stop := interruptible()
		defer stop()
		if err := t.Run(ctx); err != nil {
			return err
		}
	}
	return report.WriteTrim(o.Streams.Out, o.Format, t.View, o.Style)
}
