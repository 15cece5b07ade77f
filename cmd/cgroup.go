package cmd

import (
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/report"
)

// CgroupOptions is `memdiag cgroup` after flag parsing.
type CgroupOptions struct {
	Streams *Streams
	Proc    proc.FS // the proc filesystem (the zero value: /proc)
	SysRoot string  // where cgroup filesystems are mounted

	Target string // a pid, or a cgroup directory
	Format report.Format
	Style  report.Style
	// Textfile keeps DIR/memdiag_cgroup.prom current, every Interval.
	Textfile string
	Interval time.Duration
}

// NewCmdCgroup builds `memdiag cgroup`.
func NewCmdCgroup(d *Deps, g *globalOptions, runF func(*CgroupOptions) error) *cobra.Command {
	o := &CgroupOptions{Streams: d.Streams, Proc: d.Proc, SysRoot: "/sys/fs/cgroup"}
	c := &cobra.Command{
		Use:   "cgroup PID|DIR",
		Short: "What the OOM killer sees: a memory cgroup's usage, broken down",
		Args:  argCount(1, 1, "cgroup needs one PID or cgroup DIR"),
		RunE: func(c *cobra.Command, args []string) error {
			o.Target = args[0]
			if pid, err := strconv.Atoi(o.Target); err == nil && pid <= 0 {
				return usage(fmt.Errorf("cgroup %d: a process id is a positive number (ps -e lists them)", pid))
			}
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			return runOr(runF, runCgroup, o)
		},
	}
	c.Flags().StringVar(&o.Textfile, "textfile", "", "keep DIR/memdiag_cgroup.prom current for node_exporter's textfile collector, rewritten atomically every --interval, until stopped")
	c.Flags().DurationVar(&o.Interval, "interval", 60*time.Second, "with --textfile: how often")
	return c
}

func runCgroup(o *CgroupOptions) error {
	if o.Textfile != "" {
		ctx, stop := interruptible()
		defer stop()
		return report.KeepTextfile(ctx, o.Textfile, "memdiag_cgroup.prom", o.Interval, o.Streams.ErrOut, func(w io.Writer) error {
			v, err := collect.CgroupView(o.Proc, o.SysRoot, o.Target)
			if err != nil {
				return err
			}
			return report.WriteCgroup(w, report.FormatOpenMetrics, v, report.Style{})
		})
	}
	v, err := collect.CgroupView(o.Proc, o.SysRoot, o.Target)
	if err != nil {
		return err
	}
	return report.WriteCgroup(o.Streams.Out, o.Format, v, o.Style)
}

// OOMOptions is `memdiag oom` after flag parsing.
type OOMOptions struct {
	Streams *Streams
	collect.OOMRequest
	Format report.Format
	Style  report.Style
}

// NewCmdOOM builds `memdiag oom`.
func NewCmdOOM(d *Deps, g *globalOptions, runF func(*OOMOptions) error) *cobra.Command {
	o := &OOMOptions{Streams: d.Streams, OOMRequest: collect.OOMRequest{In: d.Streams.In, Proc: d.Proc, SysRoot: "/sys/fs/cgroup"}}
	c := &cobra.Command{
		Use:   "oom [FILE]",
		Short: "After the pod is gone: the kernel's report of an OOM kill, broken down",
		Args:  argCount(0, 1, "oom reads at most one FILE (none: this boot's kernel log)"),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, c); err != nil {
				return err
			}
			return runOr(runF, runOOM, o)
		},
	}
	c.Flags().BoolVar(&o.All, "all", false, "show every report, not only the last")
	return c
}

func runOOM(o *OOMOptions) error {
	defer o.Streams.SoftMemoryLimit(64 << 20)() // a log's reports are kept; each line read is garbage
	views, err := collect.OOMViews(&o.OOMRequest)
	if err != nil {
		return err
	}
	for _, v := range views {
		if err := report.WriteCgroup(o.Streams.Out, o.Format, v, o.Style); err != nil {
			return err
		}
	}
	return nil
}
