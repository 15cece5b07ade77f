package cmd

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/collect"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/report"
)

// CgroupOptions is `memdiag cgroup` after flag parsing.
type CgroupOptions struct {
	Streams  *Streams
	ProcRoot string
	SysRoot  string // where cgroup filesystems are mounted

	Target string // a pid, or a cgroup directory
	Format report.Format
	Color  bool
	Width  int // what tables must fit in (0: no limit)
	// Textfile keeps DIR/memdiag_cgroup.prom current, every Interval.
	Textfile string
	Interval time.Duration
}

// NewCmdCgroup builds `memdiag cgroup`.
func NewCmdCgroup(d *Deps, g *globalOptions, runF func(*CgroupOptions) error) *cobra.Command {
	o := &CgroupOptions{Streams: d.Streams, ProcRoot: d.ProcRoot, SysRoot: "/sys/fs/cgroup"}
	c := &cobra.Command{
		Use:   "cgroup PID|DIR",
		Short: "What the OOM killer sees: a memory cgroup's usage, broken down",
		Long: `Read the memory cgroup of process PID (or the cgroup directory DIR), v1 or v2,
and break its usage down into parts that sum to it exactly — anonymous memory,
shmem, page cache, kernel memory, and the gap the statistics do not split —
beside the limit, the working set as cAdvisor and kubectl top compute it
(usage − inactive file), what is reclaimable, the OOM kills counted, and the
processes in it. Findings: OOM kills, near the limit, shmem that no process
maps (files in /dev/shm count against the limit but show in no RSS), a working
set inflated by reclaimable cache, memory pressure (PSI).`,
		Example: `  memdiag cgroup 1234
  memdiag cgroup /sys/fs/cgroup/memory/kubepods/burstable/pod-x/app -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			o.Target = args[0]
			if pid, err := strconv.Atoi(o.Target); err == nil && pid <= 0 {
				return usage(fmt.Errorf("cgroup %d: a process id is a positive number (ps -e lists them)", pid))
			}
			var err error
			if o.Format, err = g.formatWith(report.FormatOpenMetrics); err != nil {
				return err
			}
			o.Color = d.Streams.colorEnabled(g.noColor)
			o.Width = d.Streams.tableWidth(g.wide)
			if runF != nil {
				return runF(o)
			}
			return runCgroup(o)
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
		return textfileLoop(ctx, o.Textfile, "memdiag_cgroup.prom", o.Interval, o.Streams.ErrOut, func(w io.Writer) error {
			v, err := readCgroupView(o)
			if err != nil {
				return err
			}
			return report.WriteCgroup(w, report.FormatOpenMetrics, v, report.Style{})
		})
	}
	v, err := readCgroupView(o)
	if err != nil {
		return err
	}
	return report.WriteCgroup(o.Streams.Out, o.Format, v, report.Style{Color: o.Color, Width: o.Width})
}

func readCgroupView(o *CgroupOptions) (*report.CgroupView, error) {
	cg, err := collect.ReadCgroup(o.ProcRoot, o.SysRoot, o.Target)
	if err != nil {
		return nil, err
	}
	v := &report.CgroupView{Title: fmt.Sprintf("memdiag cgroup: %s (cgroup v%d)", cg.Dir, cg.Group.Version), Source: cg.Dir,
		Group: cg.Group, Members: cg.Members, Findings: cg.Findings}
	for _, a := range cg.Anon {
		v.AnonByKind = append(v.AnonByKind, report.MemberAnon(a))
	}
	return v, nil
}

// OOMOptions is `memdiag oom` after flag parsing.
type OOMOptions struct {
	Streams *Streams
	File    string // "" reads /dev/kmsg, or runs dmesg
	All     bool
	// ProcRoot, SysRoot and Kmsg are where the kernel's counters and log
	// are ("" for /proc, /sys/fs/cgroup, /dev/kmsg).
	ProcRoot, SysRoot, Kmsg string
	// MaxBytes bounds FILE and standard input (0: MaxKernelLogBytes).
	MaxBytes int64
	Format   report.Format
	Color    bool
	Width    int // what tables must fit in (0: no limit)
}

// NewCmdOOM builds `memdiag oom`.
func NewCmdOOM(d *Deps, g *globalOptions, runF func(*OOMOptions) error) *cobra.Command {
	o := &OOMOptions{Streams: d.Streams, ProcRoot: d.ProcRoot, SysRoot: "/sys/fs/cgroup"}
	c := &cobra.Command{
		Use:   "oom [FILE]",
		Short: "After the pod is gone: the kernel's report of an OOM kill, broken down",
		Long: `Read the kernel's report of an OOM kill — from FILE (a saved dmesg or
journalctl -k), "-" for standard input, or, with no FILE, from /dev/kmsg (else
dmesg -r) — and show the last one (--all: every one) as memdiag cgroup would
have shown the cgroup at that moment: the breakdown of its usage, the processes
with their RSS, the victim, and the findings.

The kernel logs text users choose (a rejected mount option, verbatim), so only
records of the kernel's exact shapes count, and each report of this boot's log
is checked against the kill counters (/proc/vmstat oom_kill, the cgroup's own):
its notes say whether they back it, or why it is unverified.`,
		Example: `  memdiag oom
  journalctl -k --since today | memdiag oom -
  memdiag oom node-dmesg.txt -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			var err error
			if o.Format, err = g.format(); err != nil {
				return err
			}
			o.Color = d.Streams.colorEnabled(g.noColor)
			o.Width = d.Streams.tableWidth(g.wide)
			if runF != nil {
				return runF(o)
			}
			return runOOM(o)
		},
	}
	c.Flags().BoolVar(&o.All, "all", false, "show every report, not only the last")
	return c
}

func runOOM(o *OOMOptions) error {
	r, name, live, closeIn, err := openKernelLog(o)
	if err != nil {
		return err
	}
	defer closeIn()
	reports, err := memcg.ParseOOM(r, name)
	if err != nil {
		return err
	}
	memcg.Verify(reports, memcg.VerifyOptions{Live: live, Proc: proc.NewFS(o.ProcRoot), SysRoot: o.SysRoot})
	if !o.All {
		reports = reports[len(reports)-1:]
	}
	var boot time.Time // zero unless the log is this boot's
	if live {
		boot, _ = memcg.BootTime(proc.NewFS(o.ProcRoot))
	}
	for _, rep := range reports {
		g := rep.Group()
		members := rep.Members()
		where := rep.Cgroup
		if where == "" {
			where = "the whole host (no memory cgroup named)"
		}
		at, how, _ := rep.WallTime(boot, time.Now())
		v := &report.CgroupView{
			Title:  fmt.Sprintf("memdiag oom: %s killed %d (%s) %s, in %s (cgroup v%d)", name, rep.Victim.PID, rep.Victim.Name, oomWhen(at, rep.Time), where, g.Version),
			Source: fmt.Sprintf("%s:%d", name, rep.Line), Group: g, Members: members, OOM: rep,
			Findings: g.Findings(members, fmt.Sprintf("%s:%d", name, rep.Line)),
			KilledAt: at, KilledAtSource: how,
		}
		if err := report.WriteCgroup(o.Streams.Out, o.Format, v, report.Style{Color: o.Color, Width: o.Width}); err != nil {
			return err
		}
	}
	return nil
}

// oomWhen says when a kill happened: by the wall clock where the log or
// the boot time tells, with the kernel's own timestamp (seconds since
// boot) beside it.
func oomWhen(t time.Time, kernel string) string {
	switch {
	case !t.IsZero() && kernel != "":
		return fmt.Sprintf("at %s (%s s after boot)", t.Local().Format("2006-01-02 15:04:05 MST"), kernel)
	case !t.IsZero():
		return "at " + t.Local().Format("2006-01-02 15:04:05 MST")
	case kernel != "":
		return fmt.Sprintf("at %s s after boot (the log does not say when that boot was)", kernel)
	}
	return "(the log gives no time)"
}

// openKernelLog opens what `memdiag oom` reads: FILE, standard input, or
// this boot's log — /dev/kmsg where it can be read (each record whole,
// with its facility), else dmesg -r (the facility, but a message's
// newlines shown as lines). live says the log is this boot's, so the
// kernel's counters can vouch for it.
func openKernelLog(o *OOMOptions) (r io.Reader, name string, live bool, closeIn func(), err error) {
	closeIn = func() {}
	switch o.File {
	case "":
		if b, err := memcg.ReadKmsg(o.Kmsg); err == nil {
			return bytes.NewReader(b), "/dev/kmsg", true, closeIn, nil
		}
		out, err := exec.Command("dmesg", "-r").Output()
		if err != nil {
			return nil, "", false, closeIn, fmt.Errorf("reading the kernel log with dmesg: %w (it needs root, or kernel.dmesg_restrict = 0; or give a saved FILE)", err)
		}
		return bytes.NewReader(out), "dmesg", true, closeIn, nil
	case "-":
		return input.LimitReader(o.Streams.In, o.maxBytes(), "-"), "-", false, closeIn, nil
	}
	f, err := input.Open(o.File)
	if err != nil {
		return nil, "", false, closeIn, err
	}
	return input.LimitReader(f, o.maxBytes(), o.File), o.File, false, func() { f.Close() }, nil
}

// MaxKernelLogBytes bounds what `memdiag oom` reads of a FILE or standard
// input: months of journalctl -k fit, an endless pipe does not.
const MaxKernelLogBytes = 1 << 30

func (o *OOMOptions) maxBytes() int64 {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return MaxKernelLogBytes
}
