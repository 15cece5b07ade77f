package cmd

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/proctop"
	"github.com/memdiag/memdiag/report"
)

// TopOptions is `memdiag top` after flag parsing.
type TopOptions struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)
	collect.TopRequest
	// Textfile keeps DIR/memdiag_top.prom current, every Interval.
	Textfile string
	Format   report.Format
	Color    bool
	// Width is what tables must fit in (0: no limit).
	Width int
}

// NewCmdTop builds `memdiag top`.
func NewCmdTop(d *Deps, g *globalOptions, runF func(*TopOptions) error) *cobra.Command {
	o := &TopOptions{Streams: d.Streams, Proc: d.Proc}
	var sortKey, rssCap, userName string
	c := &cobra.Command{
		Use:   "top",
		Short: "Which processes hold the host's memory, and what each is",
		Args:  flagsOnly("top"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.complete(c, d, g, sortKey, rssCap, userName); err != nil {
				return err
			}
			return runOr(runF, runTop, o)
		},
	}
	f := c.Flags()
	f.StringVar(&sortKey, "sort", "actual", "order by: actual (RSS + swap), rss, pss, uss, anon, swap")
	f.IntVar(&o.Limit, "limit", 25, "rows in the table (0: all; JSON and OpenMetrics list all)")
	f.StringVar(&o.GroupBy, "group-by", "", "comm: one row per command name, its processes added up (Σ PSS counts shared memory once)")
	f.IntVar(&o.Options.Top, "diagnose", 5, "how many of the largest get the maps diagnoses (arenas, JVM, allocator)")
	// --top was that flag's first name, and reads like the rows --limit
	// gives: still accepted, hidden, with a warning naming both. (cobra's
	// MarkDeprecated would print its warning on standard output, into the
	// JSON.)
	f.IntVar(&o.Options.Top, "top", 5, "deprecated: --diagnose")
	_ = f.MarkHidden("top")
	f.StringVar(&userName, "user", "", "only the processes of this user (a name or a uid)")
	f.StringVar(&o.Name, "name", "", "only the processes whose command name or command line contains this")
	f.BoolVar(&o.Reverse, "reverse", false, "list the smallest first (JSON keeps its order, largest first)")
	f.StringVar(&rssCap, "cap", "8GiB", "read smaps_rollup only for processes with less RSS than this")
	f.BoolVar(&o.Options.Deep, "deep", false, "read smaps_rollup of every process, whatever its RSS and the time it takes")
	f.DurationVar(&o.Options.RollupBudget, "rollup-budget", proctop.DefaultRollupBudget, "time for smaps_rollup in all, spent on the largest processes first; the rest say they were skipped (0: no limit)")
	f.DurationVar(&o.Interval, "interval", 0, "read twice this far apart and show each process's growth; with --textfile, the cycle (default 60s)")
	f.StringVar(&o.Textfile, "textfile", "", "keep DIR/memdiag_top.prom current for node_exporter's textfile collector, rewritten atomically every --interval, until stopped")
	return c
}

// complete fills o from the flags that need parsing or checking.
func (o *TopOptions) complete(c *cobra.Command, d *Deps, g *globalOptions, sortKey, rssCap, userName string) error {
	var err error
	if o.Format, err = g.format(c); err != nil {
		return err
	}
	o.Color = d.Streams.ColorEnabled(g.noColor)
	o.Width = d.Streams.TableWidth(g.wide)
	if o.Options.Sort, err = proctop.ParseSortKey(sortKey); err != nil {
		return usage(err)
	}
	if o.Options.RSSCap, err = humanize.ParseBytes(rssCap); err != nil {
		return usage(fmt.Errorf("--cap: %w", err))
	}
	if o.Limit < 0 || o.Options.Top < 0 || o.Interval < 0 {
		return usage(errors.New("--limit, --diagnose and --interval cannot be negative"))
	}
	filter := proctop.Filter{Name: o.Name, Self: os.Getpid()}
	if userName != "" {
		if filter.UID, err = proctop.LookupUser(userName); err != nil {
			return usage(fmt.Errorf("--user %q: no such user (give a name or a uid)", userName))
		}
		filter.HasUID, o.User = true, userName
	}
	if filter.HasUID || filter.Name != "" {
		o.Options.Keep = filter.Keep(o.Proc)
	}
	if o.GroupBy != "" && o.GroupBy != "comm" {
		return usage(fmt.Errorf("--group-by %q: the one grouping is comm (the command name)", o.GroupBy))
	}
	if c.Flags().Changed("top") {
		fmt.Fprintln(d.Streams.ErrOut, "memdiag: --top is deprecated: it sets how many processes are diagnosed (--diagnose N); --limit N sets the rows listed")
	}
	switch {
	case o.Options.RollupBudget < 0:
		return usage(errors.New("--rollup-budget cannot be negative"))
	case o.Options.RollupBudget == 0:
		o.Options.RollupBudget = -1 // no limit
	}
	o.Options.Proc = o.Proc
	return nil
}

func runTop(o *TopOptions) error {
	// Only a loop or a wait is ended by Ctrl-C; one reading keeps the
	// signal's default.
	ctx, stop := interruptibleIf(o.Textfile != "" || o.Interval > 0)
	defer stop()
	if o.Textfile != "" {
		interval := o.Interval
		if interval == 0 {
			interval = 60 * time.Second
		}
		return collect.TopTextfile(ctx, o.Options, o.Textfile, interval, o.Streams.ErrOut)
	}
	r := o.TopRequest
	switch {
	case o.Format == report.FormatOpenMetrics, o.GroupBy != "" && o.Format != report.FormatJSON:
		r.Details = collect.DetailsNone
	case o.Format == report.FormatJSON:
		r.Details = collect.DetailsAll
	}
	v, err := collect.Top(ctx, &r)
	if err != nil {
		return err
	}
	return report.WriteTop(o.Streams.Out, o.Format, v, report.Style{Color: o.Color, Width: o.Width})
}
