package cmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
)

// WatchOptions is `memdiag watch` after flag parsing.
type WatchOptions struct {
	Streams  *Streams
	ProcRoot string
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
	o := &WatchOptions{Streams: d.Streams, ProcRoot: d.ProcRoot}
	c := &cobra.Command{
		Use:   "watch --pid PID [--interval 10s] [--count N] [evidence…]",
		Short: "Re-explain a process at intervals and show each category's growth rate",
		Long: `Sample the attribution of a live process every --interval and show which part
of RSS is growing: one line per sample, as vmstat does — the time, RSS and its
change per minute, each category's bytes, the category growing fastest and the
lead finding — under a header repeated every 20 lines on a terminal (once into
a pipe). --table shows each sample as a table instead: every category's bytes,
change since the first sample and rate per minute. Stops after --count
samples, or cleanly on Ctrl-C (SIGINT/SIGTERM) with a last summary. -o json
writes one JSON object per sample (memdiag.watch/v1), a line each, for pipes.

--capture-malloc-info reads glibc's arenas from the process's memory at every
sample, its threads stopped for a few milliseconds each time, never over a second
(--no-stop: not at all); jemalloc's and tcmalloc's statistics go through gdb, which pauses
the process longer: use a long interval there.

-o html writes, once the watch ends, one self-contained HTML page of every
sample: each category over time (docs/html.md).`,
		Example: `  memdiag watch --pid 1234 --interval 30s
  memdiag watch --pid 1234 --interval 30s --table
  memdiag watch --pid 1234 --interval 1m -o json | jq -c '{t: .elapsed_seconds, rss: .rss_bytes}'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usage(fmt.Errorf("watch takes flags, not arguments (got %q)", args[0]))
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
			if o.Format, err = g.formatWith(report.FormatHTML); err != nil {
				return err
			}
			o.Width = d.Streams.tableWidth(g.wide)
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
	var w explain.Watch
	out := report.NewWatchWriter(o.Streams.Out, o.Format, report.Style{Width: o.Width})
	out.PID, out.Tables = o.Gather.PID, o.Table
	if o.Streams.OutIsTTY {
		out.HeaderEvery = report.WatchHeaderEvery
	}
	var samples []*explain.WatchSample // for -o html, written when the watch ends
	exited := false
	ended := "" // why the watch ended, when its target is no longer itself
	procDir := filepath.Join(procRootOr(o.ProcRoot), strconv.Itoa(o.Gather.PID))
	id, err := proc.ReadIdentity(procDir)
	if err != nil {
		return fmt.Errorf("process %d: %w", o.Gather.PID, pmap.ErrNoProcess)
	}
	tick := time.NewTicker(o.Interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		// Before any read or capture, and again after: a pid reused, or a
		// program exec'd (a setuid one), is another process, and memdiag
		// running as root must neither attach to it nor report its growth
		// as the first one's.
		if ended = targetChanged(id, procDir, o.Gather.PID); ended != "" {
			break
		}
		in, failed, err := gather(ctx, &o.Gather, o.ProcRoot, o.Streams.ErrOut)
		if ended = targetChanged(id, procDir, o.Gather.PID); ended != "" {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if w.Last() != nil && processGone(err) {
				// The end of what there was to watch, not a failure.
				exited = true
				break
			}
			return err
		}
		if n == 1 {
			warnFailed(o.Streams.ErrOut, failed)
		}
		sample := w.Add(in, time.Now())
		if o.Format == report.FormatHTML {
			samples = append(samples, sample)
		} else if err := out.Write(sample); err != nil {
			return err
		}
		if o.Count > 0 && n >= o.Count {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	if w.Last() == nil {
		if ended != "" {
			return fmt.Errorf("%s: %w", ended, pmap.ErrNoProcess)
		}
		return nil
	}
	why := "stopped"
	switch {
	case ended != "":
		why = ended + "; the watch ended"
	case exited:
		why = fmt.Sprintf("process %d exited", o.Gather.PID)
	}
	summary := report.WatchSummary(&w, why)
	if o.Format == report.FormatHTML {
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", summary)
		command := ""
		if first, _ := w.Snapshots(); first != nil {
			command = first.Inputs.Command
		}
		return report.WriteWatchHTML(o.Streams.Out, report.NewWatchView(o.Gather.PID, command, samples, summary))
	}
	if o.Format == report.FormatJSON {
		// Standard output is one sample per line; the summary is for people.
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: %s\n", summary)
		return nil
	}
	fmt.Fprintln(o.Streams.Out, summary)
	return nil
}

// targetChanged says why the process in procDir is no longer the one
// whose identity is was: "" while it is. A process gone is left to gather
// to find, as before.
func targetChanged(was proc.Identity, procDir string, pid int) string {
	now, err := proc.ReadIdentity(procDir)
	if err != nil {
		return ""
	}
	return was.Changed(pid, now)
}

// procRootOr is procRoot, or /proc when it is "".
func procRootOr(procRoot string) string {
	if procRoot == "" {
		return "/proc"
	}
	return procRoot
}

// processGone reports whether err says the watched process is no more.
func processGone(err error) bool {
	return errors.Is(err, pmap.ErrNoProcess) || errors.Is(err, pmap.ErrExited) || errors.Is(err, pmap.ErrNoAddressSpace)
}
