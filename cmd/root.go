// Package cmd holds memdiag's cobra commands. Each is thin: flags become an
// options struct, a library call does the work, a report renderer writes it.
package cmd

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/termsafe"
	"github.com/memdiag/memdiag/report"
)

// Deps is what commands need from the outside world.
type Deps struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)
	Version string
	// Demo is a snapshot explain shows when given no process or files.
	Demo []byte
}

// globalOptions are the root's persistent flags, shared by every command.
type globalOptions struct {
	output  string
	noColor bool
	// wide: tables at their full width whatever the terminal's.
	wide bool
}

// moreFormats are the -o values a command takes beyond report.Formats.
func moreFormats(command string) []report.Format {
	switch command {
	case "explain", "snapshot":
		return []report.Format{report.FormatOpenMetrics, report.FormatHTML}
	case "top", "cgroup":
		return []report.Format{report.FormatOpenMetrics}
	case "diff", "watch", "mallocinfo", "trace", "record":
		return []report.Format{report.FormatHTML}
	}
	return nil
}

// format reads -o for command c.
func (g *globalOptions) format(c *cobra.Command) (report.Format, error) {
	f, err := report.ParseFormat(g.output, moreFormats(c.Name())...)
	if err != nil {
		return "", usage(err)
	}
	return f, nil
}

// runners replaces commands' run functions in tests of flag parsing; a nil
// field runs the real command.
type runners struct {
	pmap       func(*PmapOptions) error
	mallocinfo func(*MallocInfoOptions) error
	trace      func(*TraceOptions) error
	jmx        func(*JMXOptions) error
	explain    func(*ExplainOptions) error
	snapshot   func(*SnapshotOptions) error
	diff       func(*DiffOptions) error
	watch      func(*WatchOptions) error
	trim       func(*TrimOptions) error
	top        func(*TopOptions) error
	cgroup     func(*CgroupOptions) error
	oom        func(*OOMOptions) error
	record     func(*RecordOptions) error
}

// NewRootCmd builds the memdiag command tree.
func NewRootCmd(d *Deps) *cobra.Command { return newRootCmd(d, runners{}) }

func newRootCmd(d *Deps, r runners) *cobra.Command {
	g := &globalOptions{}
	root := &cobra.Command{
		Use:           "memdiag",
		Short:         "Explain where a Linux process's memory went",
		Long:          helpText("memdiag.long"),
		Version:       d.Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// With no RunE cobra reports an unknown command as a plain error;
		// this makes it a usage error (exit 2) like every other bad argv.
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usage(fmt.Errorf("unknown command %q (see 'memdiag --help')", args[0]))
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error { return c.Help() },
	}
	root.SetIn(d.Streams.In)
	root.SetOut(d.Streams.Out)
	root.SetErr(d.Streams.ErrOut)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usage(fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	pf := root.PersistentFlags()
	pf.StringVarP(&g.output, "output", "o", "table", "output format: "+joinFormats()) // and each command's moreFormats, once they are added
	pf.BoolVar(&g.noColor, "no-color", false, "never colour the output (also when NO_COLOR is set)")
	pf.BoolVar(&g.wide, "wide", false, "tables at full width: on a terminal narrower than a table (or $COLUMNS), columns are otherwise left out and the last one clipped")

	root.AddCommand(NewCmdPmap(d, g, r.pmap))
	root.AddCommand(NewCmdMallocInfo(d, g, r.mallocinfo))
	root.AddCommand(NewCmdTrace(d, g, r.trace))
	root.AddCommand(NewCmdJMX(d, g, r.jmx))
	root.AddCommand(NewCmdExplain(d, g, r.explain))
	root.AddCommand(NewCmdSnapshot(d, g, r.snapshot))
	root.AddCommand(NewCmdDiff(d, g, r.diff))
	root.AddCommand(NewCmdWatch(d, g, r.watch))
	root.AddCommand(NewCmdTrim(d, g, r.trim))
	root.AddCommand(NewCmdTop(d, g, r.top))
	root.AddCommand(NewCmdCgroup(d, g, r.cgroup))
	root.AddCommand(NewCmdOOM(d, g, r.oom))
	root.AddCommand(NewCmdRecord(d, g, r.record))
	// After every command is added: they walk the tree.
	pf.Lookup("output").Usage += moreFormatsWords(root)
	registerCompletions(root, d.Proc)
	guardPIDFlags(root)
	setHelp(root)
	return root
}

// moreFormatsWords says which commands take which more formats:
// " (cgroup, explain, snapshot and top: also openmetrics; …)".
func moreFormatsWords(root *cobra.Command) string {
	var parts []string
	for _, f := range []report.Format{report.FormatOpenMetrics, report.FormatHTML} {
		var names []string
		for _, c := range root.Commands() {
			if slices.Contains(moreFormats(c.Name()), f) {
				names = append(names, c.Name())
			}
		}
		parts = append(parts, humanize.List(names, "and")+": also "+string(f))
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func joinFormats() string {
	formats := report.Formats()
	s := make([]string, len(formats))
	for i, f := range formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Main runs memdiag with args (without the program name) and returns the
// process's exit code. Errors are written to stderr as one line.
func Main(args []string, d *Deps) int {
	root := NewRootCmd(d)
	root.SetArgs(args)
	err := root.Execute()
	if err != nil {
		fmt.Fprintf(d.Streams.ErrOut, "memdiag: %s\n", termsafe.Escape(err.Error()))
	}
	return exitCode(err)
}

// interruptible returns a context ended by SIGINT, SIGTERM or SIGHUP, so
// that a live capture cut short unwinds, detaches and removes what it made
// instead of dying mid-way. Its error then says "interrupted".
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
}

// interruptibleIf is interruptible for a live capture; reading a file or
// a pipe keeps the signals' default, so that Ctrl-C ends memdiag there.
func interruptibleIf(live bool) (context.Context, context.CancelFunc) {
	if !live {
		return context.Background(), func() {}
	}
	return interruptible()
}

// notifier tells the user, on w, of a step that pauses a process or waits;
// the message names the process, so it is escaped as the tables are.
func notifier(w io.Writer) func(string) {
	return func(msg string) { fmt.Fprintf(w, "memdiag: %s\n", termsafe.Escape(msg)) }
}
