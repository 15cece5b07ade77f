package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
)

// defaultTop is how many mappings a table shows without --top or --all.
const defaultTop = 20

// PmapOptions is `memdiag pmap` after flag parsing.
type PmapOptions struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)

	// Target is a PID, "self", a saved smaps file, or "-" for stdin.
	Target  string
	Format  report.Format
	Style   report.Style
	Sort    pmap.SortKey
	Classes []pmap.Class
	// Limit is how many mappings to list; 0 lists all.
	Limit int
	Why   bool
	// Attach allows attaching to a JVM for its heap range. pmap does not
	// by default: like pmap(1) it only reads.
	Attach bool
}

// NewCmdPmap builds `memdiag pmap`. runF replaces the run function in tests
// of flag parsing; nil runs the real one.
func NewCmdPmap(d *Deps, g *globalOptions, runF func(*PmapOptions) error) *cobra.Command {
	o := &PmapOptions{Streams: d.Streams, Proc: d.Proc}
	var (
		top     int
		all     bool
		sortKey string
		classes []string
	)
	c := &cobra.Command{
		Use:   "pmap TARGET",
		Short: "Every mapping of a process, classified and summed",
		Args:  argCount(1, 1, "pmap needs one TARGET (a PID, self, a smaps file or -)"),
		RunE: func(c *cobra.Command, args []string) error {
			o.Target = args[0]
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			if o.Sort, err = pmap.ParseSortKey(sortKey); err != nil {
				return usage(err)
			}
			if o.Classes, err = collect.ParseClasses(classes); err != nil {
				return usage(err)
			}
			if top < 0 {
				return usage(fmt.Errorf("--top must be positive, got %d", top))
			}
			switch {
			case all && c.Flags().Changed("top"):
				return usage(errors.New("--all and --top contradict each other: give one"))
			case all:
				o.Limit = 0
			case c.Flags().Changed("top"):
				o.Limit = top
			case o.Format == report.FormatJSON:
				o.Limit = 0 // scripts get every mapping unless they ask for fewer
			default:
				o.Limit = defaultTop
			}
			return runOr(runF, runPmap, o)
		},
	}
	f := c.Flags()
	f.IntVar(&top, "top", 0, fmt.Sprintf("list the N largest mappings (default %d in tables, all in JSON)", defaultTop))
	f.BoolVar(&all, "all", false, "list every mapping")
	f.StringVar(&sortKey, "sort", string(pmap.SortRSS), "order mappings by rss, pss, size, swap, private-dirty or address")
	f.StringSliceVar(&classes, "class", nil, "list only mappings of these classes (repeat or comma-separate)")
	f.BoolVar(&o.Why, "why", false, "show why each mapping got its class")
	f.BoolVar(&o.Attach, "attach", false, "attach to a JVM for its heap range (GC.heap_info over its attach socket): tells the Java heap's mapping apart")
	var noAttach bool
	f.BoolVar(&noAttach, "no-attach", false, "never attach (the default; kept for old scripts)")
	_ = f.MarkHidden("no-attach")
	return c
}

func runPmap(o *PmapOptions) error {
	_, live := collect.ParseTarget(o.Target)
	ctx, stop := interruptibleIf(live)
	defer stop()
	v, err := collect.Pmap(ctx, &collect.PmapRequest{Proc: o.Proc, Target: o.Target, In: o.Streams.In, Attach: o.Attach,
		Notify: notifier(o.Streams.ErrOut), Selection: pmap.Selection{Sort: o.Sort, Classes: o.Classes, Limit: o.Limit}})
	if err != nil {
		return err
	}
	v.Why = o.Why
	return report.WritePmap(o.Streams.Out, o.Format, v, o.Style)
}
