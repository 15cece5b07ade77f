package cmd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
	"github.com/memdiag/memdiag/syscalltrace"
)

// TraceOptions is `memdiag trace` after flag parsing.
type TraceOptions struct {
	Streams  *Streams
	ProcRoot string

	Paths      []string // files or directories (strace -ff); "-" for stdin
	Format     report.Format
	Style      report.Style
	Trace      syscalltrace.Format
	GroupBy    syscalltrace.GroupBy
	At         float64
	HasAt      bool
	PprofPath  string
	SmapsPath  string
	PID        int
	PerProcess bool
	Top        int
}

// NewCmdTrace builds `memdiag trace`.
func NewCmdTrace(d *Deps, g *globalOptions, runF func(*TraceOptions) error) *cobra.Command {
	o := &TraceOptions{Streams: d.Streams, ProcRoot: d.ProcRoot}
	var format, groupBy, at string
	c := &cobra.Command{
		Use:   "trace FILE... ",
		Short: "Mappings made and never released, by whom, from a syscall trace",
		Long: `Replay mmap, munmap, mremap, brk and madvise from a trace into the process's
address space and report what was mapped and never unmapped — still mapped at
the end, or alive when the process exited — grouped by call stack when the
trace has stacks (strace -k, perf trace --call-graph), else by size.

FILE is the output of one of four tracers: strace (-f, -ff files or their
directory, -o or stderr forms, any of -t/-tt/-ttt/-r and -T, -k), perf trace,
sysdig (text, or JSON with -j) or bpftrace running docs/memdiag-mmap.bt; gzip
and zstd are read directly; "-" reads standard input. The format is detected
by content (--format names it).

Capture, for example:
  strace -f -k -tt -e trace=memory,clone,clone3,execve -o app.strace -p PID
  perf trace -e mmap,munmap,mremap,brk,madvise --call-graph dwarf -p PID 2> app.perf
  bpftrace docs/memdiag-mmap.bt PID > app.bt

Tasks share one address space (one process and its threads) unless the trace
shows a fork or exec; --per-process gives every task its own.

-o html writes one self-contained HTML page with a searchable flame graph
of the outstanding bytes by stack (docs/html.md).`,
		Example: `  memdiag trace app.strace
  memdiag trace app.strace --pprof leaks.pb.gz && go tool pprof -top leaks.pb.gz
  memdiag trace traces/ --pid 1234 --group-by leaf`,
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
	t := &collect.Traces{}
	defer func() { t.Close() }()
	if len(o.Paths) == 1 && o.Paths[0] == "-" {
		in, err := syscalltrace.OpenFile("-", o.Streams.In, o.Trace, 0)
		if err != nil {
			return err
		}
		t.Inputs = append(t.Inputs, in)
	} else {
		files, pids, err := syscalltrace.Expand(o.Paths)
		if err != nil {
			return err
		}
		var total int64
		for _, path := range files {
			if fi, err := os.Stat(path); err == nil {
				total += fi.Size()
			}
		}
		var prog *progress
		if o.Streams.ErrIsTTY && total >= progressMinBytes {
			prog = startProgress(o.Streams.ErrOut, "reading "+strings.Join(o.Paths, " "), total)
			defer prog.stop()
		}
		var wrap func(io.Reader) io.Reader
		if prog != nil {
			wrap = prog.wrap
		}
		if t, err = collect.OpenTraces(files, pids, o.Trace, wrap); err != nil {
			return err
		}
	}
	inputs := t.Inputs
	replay := syscalltrace.NewReplay(!o.PerProcess)
	replay.Until, replay.HasUntil = o.At, o.HasAt
	src, stop := syscalltrace.Combine(inputs, runtime.GOMAXPROCS(0))
	defer stop()
	if err := replay.ApplyAll(src); err != nil {
		return err
	}
	v := &report.TraceView{Source: strings.Join(o.Paths, " "), Format: string(inputs[0].Format), Replay: replay, GroupLimit: o.Top}
	if replay.Stats.Events == 0 && replay.HasStoppedAt {
		return fmt.Errorf("%s: no memory system call at or before --at %g s; the first is at %g s as the trace prints time (seconds since midnight for HH:MM:SS stamps)", v.Source, o.At, replay.StoppedAt)
	}
	if replay.Stats.Events == 0 {
		return fmt.Errorf("%s: no memory system calls in the trace (was it captured with -e trace=memory, or perf trace -e mmap,munmap…?)", v.Source)
	}
	if n := replay.Stats.Invalid; n > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("warning: skipped %d calls whose ranges wrap past the top of the address space (a corrupt trace?)", n))
	}
	for _, in := range inputs {
		if n := in.Lost(); n > 0 {
			v.Notes = append(v.Notes, fmt.Sprintf("warning: %s: the tracer lost %d events; mappings made or released by them are missing from the replay (raise perf's buffer with -m)", in.Name, n))
		}
		if n, first := in.Foreign(); n > 0 {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: skipped %d lines that are not %s output (first at line %d: the program's own output?)", in.Name, n, in.Format, first))
		}
	}
	v.Outstanding = replay.Outstanding()
	if o.SmapsPath != "" || o.PID != 0 {
		vmas, err := joinSmaps(o)
		if err != nil {
			return err
		}
		v.Resident = syscalltrace.JoinSmaps(v.Outstanding, vmas)
	}
	v.GroupBy = o.GroupBy.Resolve(v.Outstanding)
	v.Groups = syscalltrace.Groups(v.Outstanding, v.GroupBy, v.Resident)
	v.Findings = syscalltrace.Findings(v.Outstanding, v.Groups, &replay.Stats, v.Source, v.Resident != nil)
	if o.PprofPath != "" {
		if err := atomicfile.Write(o.PprofPath, 0o644, func(w io.Writer) error {
			return syscalltrace.WriteProfile(w, v.Outstanding, v.Resident)
		}); err != nil {
			return fmt.Errorf("writing %s: %w", o.PprofPath, err)
		}
		v.Notes = append(v.Notes, fmt.Sprintf("profile written: go tool pprof -sample_index=outstanding -top %s", o.PprofPath))
	}
	return report.WriteTrace(o.Streams.Out, o.Format, v, o.Style)
}

func joinSmaps(o *TraceOptions) ([]pmap.Mapping, error) {
	if o.PID != 0 {
		p, err := collect.LiveProcess(o.ProcRoot, o.PID)
		if err != nil {
			return nil, err
		}
		return p.Mappings, nil
	}
	return collect.SmapsFile(o.SmapsPath, o.Streams.In)
}
