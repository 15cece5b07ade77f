package cmd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
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
		Use:     "trace FILE... ",
		Short:   "Mappings made and never released, by whom, from a syscall trace",
		Long:    helpText("trace.long"),
		Example: helpText("trace.examples"),
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usage(errors.New("trace needs a FILE (or a directory of strace -ff files, or -)"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			o.Paths = args
			var err error
			if o.Format, o.Style, err = g.decide(d.Streams, report.FormatHTML); err != nil {
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
	switch syscalltrace.Format(format) {
	case syscalltrace.FormatAuto, syscalltrace.FormatStrace, syscalltrace.FormatPerfTrace, syscalltrace.FormatBpftrace,
		syscalltrace.FormatSysdig, syscalltrace.FormatSysdigJSON:
		o.Trace = syscalltrace.Format(format)
	default:
		return usage(fmt.Errorf("--format %q: want strace, perf-trace, sysdig, sysdig-json or bpftrace", format))
	}
	switch gb := syscalltrace.GroupBy(groupBy); gb {
	case syscalltrace.GroupAuto, syscalltrace.GroupStack, syscalltrace.GroupLeaf, syscalltrace.GroupSize, syscalltrace.GroupThread, syscalltrace.GroupFlags:
		o.GroupBy = gb
	default:
		return usage(fmt.Errorf("--group-by %q: want stack, leaf, size, thread or flags", groupBy))
	}
	if at != "" {
		v, ok := parseTraceTime(at)
		if !ok {
			return usage(fmt.Errorf("--at %q: want seconds (12.5, 1700000000.25) or HH:MM:SS[.frac] as the trace prints them", at))
		}
		o.At, o.HasAt = v, true
	}
	if o.PID != 0 && o.SmapsPath != "" {
		return usage(errors.New("--pid and --smaps both give the smaps to join: give one"))
	}
	return nil
}

func parseTraceTime(s string) (float64, bool) {
	if strings.Contains(s, ":") {
		return parseClock(s)
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil && v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v)
}

// parseClock reads HH:MM:SS[.frac] as strace -t/-tt prints it: a time of
// day, so 99:99 or 12:75:00 is a typo, not a time.
func parseClock(s string) (float64, bool) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, false
	}
	return float64(h*3600+m*60) + sec, true
}

func runTrace(o *TraceOptions) error {
	if o.Streams.ErrIsTTY {
		o.Progress = func(total int64) (func(io.Reader) io.Reader, func()) {
			if total < report.ProgressMinBytes {
				return nil, func() {}
			}
			p := report.StartProgress(o.Streams.ErrOut, "reading "+strings.Join(o.Paths, " "), total)
			return p.Wrap, p.Stop
		}
	}
	v, err := collect.Trace(&o.TraceRequest)
	if err != nil {
		return err
	}
	return report.WriteTrace(o.Streams.Out, o.Format, v, o.Style)
}
