package cmd

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/report"
)

// WatchOptions is `memdiag watch` after flag parsing.
type WatchOptions struct {
	Streams  *Streams
	Proc     proc.FS // the proc filesystem (the zero value: /proc)
	Gather   GatherOptions
	Interval time.Duration
	Count    int // 0: until interrupted
	Format   report.Format
	// Table writes each sample as a table instead of a line.
	Table bool
	Width int // what lines and tables must fit in (0: no limit)
}

// NewCmdWatch builds `memdiag watch`.
func NewCmdWatch(d *Deps, g *globalOptions, runF func(*WatchOptions) error) *cobra.Command {
	o := &WatchOptions{Streams: d.Streams, Proc: d.Proc}
	c := &cobra.Command{
		Use:   "watch --pid PID [--interval 10s] [--count N] [evidence…]",
		Short: "Re-explain a process at intervals and show each category's growth rate",
		Args: func(c *cobra.Command, args []string) error {
			if err := flagsOnly("watch")(c, args); err != nil {
				return err
			}
			if o.Gather.PID == 0 {
				return usage(errors.New("watch needs --pid PID"))
			}
			if o.Gather.SmapsFile != "" {
				return usage(errors.New("watch samples a live process: --smaps FILE would not change between samples (use explain --smaps)"))
			}
			if o.Interval < 100*time.Millisecond {
				return usage(fmt.Errorf("--interval %v is too short: at least 100ms", o.Interval))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, err = g.format(c); err != nil {
				return err
			}
			o.Width = d.Streams.TableWidth(g.wide)
			if err := o.Gather.validate(d.Streams.Getenv); err != nil {
				return err
			}
			if runF != nil {
				return runF(o)
			}
			ctx, stop := interruptible()
			defer stop()
			return runWatch(ctx, o)
		},
	}
	o.Gather.register(c.Flags())
	// A saved smaps does not change between samples: watch is live only.
	_ = c.Flags().MarkHidden("smaps")
	c.Flags().DurationVar(&o.Interval, "interval", 10*time.Second, "time between samples")
	c.Flags().IntVar(&o.Count, "count", 0, "stop after this many samples (0: until interrupted)")
	c.Flags().BoolVar(&o.Table, "table", false, "a table per sample (every category's bytes, change and rate) instead of a line")
	return c
}

func runWatch(ctx context.Context, o *WatchOptions) error {
	out := report.NewWatchWriter(o.Streams.Out, o.Format, report.Style{Width: o.Width})
	out.PID, out.Tables = o.Gather.PID, o.Table
	if o.Streams.OutIsTTY {
		out.HeaderEvery = report.WatchHeaderEvery
	}
	var samples []*explain.WatchSample // for -o html, written when the watch ends
	r := &collect.WatchRequest{Request: o.Gather.Request, Interval: o.Interval, Count: o.Count,
		Warn: func(failed []string) { warnFailed(o.Streams.ErrOut, failed) }}
	r.Proc, r.Notify = o.Proc, notifier(o.Streams.ErrOut)
	w, why, err := collect.Watch(ctx, r, func(s *explain.WatchSample) error {
		if o.Format == report.FormatHTML {
			samples = append(samples, s)
			return nil
		}
		return out.Write(s)
	})
	if w == nil || err != nil {
		return err
	}
	summary := report.WatchSummary(w, why)
	switch o.Format {
	case report.FormatHTML:
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", summary)
		return report.WriteWatchHTML(o.Streams.Out, report.NewWatchView(o.Gather.PID, w.Command(), samples, summary))
	case report.FormatJSON:
		// Standard output is one sample per line; the summary is for people.
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", summary)
		return nil
	}
	fmt.Fprintln(o.Streams.Out, summary)
	return nil
}
