package cmd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/termsafe"
	"github.com/memdiag/memdiag/report"
)

// ExplainOptions is `memdiag explain` after flag parsing.
type ExplainOptions struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)
	Gather  GatherOptions
	// Snapshot explains a saved snapshot instead of gathering.
	Snapshot string
	// Demo is explained when no source is given at all.
	Demo   []byte
	Format report.Format
	Style  report.Style
}

// NewCmdExplain builds `memdiag explain`.
func NewCmdExplain(d *Deps, g *globalOptions, runF func(*ExplainOptions) error) *cobra.Command {
	o := &ExplainOptions{Streams: d.Streams, Proc: d.Proc}
	c := &cobra.Command{
		Use:   "explain [--pid PID | --smaps FILE | --snapshot FILE] [evidence…]",
		Short: "Where the RSS went: one attribution, with the evidence for every figure",
		Long:  report.Wrap(report.CategoriesSentence(), 76), // and help/explain.long
		Args:  flagsOnly("explain"),
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			switch {
			// The demo only when nothing at all was given: evidence without
			// smaps is the user's, and explaining the demo instead would
			// answer another question.
			case o.Snapshot == "" && o.Gather.PID == 0 && o.Gather.SmapsFile == "" && o.Gather.evidence() == "" && len(d.Demo) > 0:
				o.Demo = d.Demo
			case o.Snapshot == "":
				if err := o.Gather.validate(d.Streams.Getenv); err != nil {
					return err
				}
				if o.Gather.Record != 0 && (o.Gather.PID == 0 || o.Gather.Record < 0) {
					return usage(errors.New("--record needs --pid and a positive duration (30s)"))
				}
			case o.Gather.PID != 0 || o.Gather.SmapsFile != "" || o.Gather.evidence() != "":
				return usage(errors.New("--snapshot explains a saved snapshot: give it alone"))
			}
			return runOr(runF, runExplain, o)
		},
	}
	o.Gather.register(c.Flags())
	c.Flags().StringVar(&o.Snapshot, "snapshot", "", "explain a snapshot written by memdiag snapshot")
	c.Flags().DurationVar(&o.Gather.Record, "record", 0, "with --pid: first record the allocator live for this long (eBPF, as memdiag record): its stacks join malloc-in-use and leaked-mappings")
	return c
}

func runExplain(o *ExplainOptions) error {
	var in *explain.Inputs
	if o.Demo != nil {
		s, err := explain.ReadDemo(o.Demo)
		if err != nil {
			return err
		}
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: no --pid given: explaining a bundled example (a process whose glibc arenas kept what it freed, captured %s); run memdiag explain --pid PID for your own process\n", s.Taken.Format("2006-01-02"))
		in = &s.Inputs
	} else if o.Snapshot != "" {
		s, err := explain.ReadSnapshotFile(o.Snapshot)
		if err != nil {
			return err
		}
		in = &s.Inputs
	} else {
		ctx, stop := interruptible()
		defer stop()
		var failed []string
		var err error
		if in, failed, err = gather(ctx, &o.Gather, o.Proc, o.Streams.ErrOut); err != nil {
			return err
		}
		warnFailed(o.Streams.ErrOut, failed)
	}
	r := explain.Attribute(in)
	return report.WriteExplain(o.Streams.Out, o.Format, &report.ExplainView{Inputs: in, Result: r}, o.Style)
}

// SnapshotOptions is `memdiag snapshot` after flag parsing.
type SnapshotOptions struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)
	Gather  GatherOptions
	File    string // "" or "-": standard output
	Format  report.Format
	Now     func() time.Time
	// BestEffort writes the snapshot even when a source asked for could
	// not be read; by default that is an error, for a CI gate must not
	// compare what it did not measure.
	BestEffort bool
}

// NewCmdSnapshot builds `memdiag snapshot`.
func NewCmdSnapshot(d *Deps, g *globalOptions, runF func(*SnapshotOptions) error) *cobra.Command {
	o := &SnapshotOptions{Streams: d.Streams, Proc: d.Proc, Now: time.Now}
	c := &cobra.Command{
		Use:   "snapshot (--pid PID | --smaps FILE) [evidence…] [FILE|-]",
		Short: "Record an explanation in one self-contained JSON file, for diff and later reading",
		Args:  argCount(0, 1, "snapshot takes at most one FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			// Before any capture (which may pause the process), not at the
			// rename after it.
			if fi, err := os.Stat(o.File); err == nil && fi.IsDir() {
				return usage(fmt.Errorf("%s is a directory: give the snapshot's file name (%s)", o.File, filepath.Join(o.File, "snapshot.json")))
			}
			var err error
			if o.Format, err = g.format(c); err != nil {
				return err
			}
			if o.Format == report.FormatHTML && (o.File == "" || o.File == "-") {
				return usage(errors.New("snapshot -o html writes the snapshot to FILE and the page to standard output: give FILE"))
			}
			if err := o.Gather.validate(d.Streams.Getenv); err != nil {
				return err
			}
			return runOr(runF, runSnapshot, o)
		},
	}
	o.Gather.register(c.Flags())
	c.Flags().BoolVar(&o.BestEffort, "best-effort", false, "write the snapshot even if a source asked for (--capture-malloc-info, --jolokia, --prometheus) fails; it is then noted inside")
	return c
}

// warnFailed says on w which sources asked for could not be read: the
// report goes on without them, and says so in its notes too.
func warnFailed(w io.Writer, failed []string) {
	for _, f := range failed {
		fmt.Fprintf(w, "memdiag: warning: %s\n", termsafe.Escape(f))
	}
}

func runSnapshot(o *SnapshotOptions) error {
	ctx, stop := interruptible()
	defer stop()
	in, failed, err := gather(ctx, &o.Gather, o.Proc, o.Streams.ErrOut)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		if !o.BestEffort {
			return fmt.Errorf("%s (pass --best-effort to write the snapshot without it)", strings.Join(failed, "; "))
		}
		warnFailed(o.Streams.ErrOut, failed)
	}
	r := explain.Attribute(in)
	s := explain.NewSnapshot(in, r, o.Now(), explain.ThisHost())
	var out io.Writer = o.Streams.Out
	if o.File != "" && o.File != "-" {
		if err := s.WriteFile(o.File); err != nil {
			return fmt.Errorf("writing %s: %w", o.File, err)
		}
		fmt.Fprintf(o.Streams.ErrOut, "memdiag: wrote %s: %s\n", termsafe.Escape(o.File), termsafe.Escape(report.SnapshotWritten(s)))
		if o.Format != report.FormatOpenMetrics && o.Format != report.FormatHTML {
			return nil
		}
		return report.WriteExplain(out, o.Format, &report.ExplainView{Inputs: in, Result: r}, report.Style{})
	}
	return s.Write(out)
}
