package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/report"
)

// DiffOptions is `memdiag diff` after flag parsing.
type DiffOptions struct {
	Streams  *Streams
	Old, New string
	Rules    []explain.Rule
	All      bool
	Format   report.Format
	Style    report.Style
}

// NewCmdDiff builds `memdiag diff`.
func NewCmdDiff(d *Deps, g *globalOptions, runF func(*DiffOptions) error) *cobra.Command {
	o := &DiffOptions{Streams: d.Streams}
	var rules []string
	c := &cobra.Command{
		Use:   "diff OLD NEW [--fail-on RULE]…",
		Short: "Compare two snapshots; exit 3 when a --fail-on rule trips",
		Args:  argCount(2, 2, "diff needs OLD and NEW snapshots"),
		RunE: func(c *cobra.Command, args []string) error {
			o.Old, o.New = args[0], args[1]
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			if o.Rules, err = explain.ParseRules(rules); err != nil {
				return usage(err)
			}
			return runOr(runF, runDiff, o)
		},
	}
	c.Flags().StringArrayVar(&rules, "fail-on", nil, "exit 3 when this rule trips (repeatable)")
	c.Flags().BoolVar(&o.All, "all", false, "list unchanged rows too")
	return c
}

func runDiff(o *DiffOptions) error {
	old, err := explain.ReadSnapshotFile(o.Old)
	if err != nil {
		return err
	}
	new, err := explain.ReadSnapshotFile(o.New)
	if err != nil {
		return err
	}
	changes := explain.Diff(old, new)
	v := &report.DiffView{Old: old, New: new, Changes: changes, All: o.All}
	if r := v.Judge(o.Rules, o.Old, o.New); r != nil {
		return usage(fmt.Errorf("rule %q names no row of %s or %s (see memdiag diff %s %s --all)", r.Text, o.Old, o.New, o.Old, o.New))
	}
	if err := report.WriteDiff(o.Streams.Out, o.Format, v, o.Style); err != nil {
		return err
	}
	if len(v.Tripped) > 0 {
		return &ThresholdError{Msg: fmt.Sprintf("%d rule(s) tripped: %s", len(v.Tripped), strings.Join(v.Tripped, "; "))}
	}
	if len(v.Unevaluated) > 0 {
		// A gate that could not look must not pass.
		return fmt.Errorf("%d rule(s) could not be evaluated: %s", len(v.Unevaluated), strings.Join(v.Unevaluated, "; "))
	}
	return nil
}
