package cmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/memcg"
	"github.com/memdiag/memdiag/pmap"
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
	dir, path := o.Target, ""
	procRoot := o.ProcRoot
	if procRoot == "" {
		procRoot = "/proc"
	}
	if pid, err := strconv.Atoi(o.Target); err == nil && pid > 0 {
		var err error
		if dir, path, _, err = memcg.Locate(procRoot, o.SysRoot, pid); err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				// Its /proc directory is gone: say so, not which file.
				return nil, fmt.Errorf("process %d: %w", pid, pmap.ErrNoProcess)
			}
			return nil, err
		}
	}
	g, err := memcg.Read(dir)
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = dir
	}
	g.Path = path
	members, err := g.Members(procRoot)
	if err != nil {
		return nil, err
	}
	fs := append(g.Findings(members, dir), jvmOverLimit(o.ProcRoot, g, members)...)
	finding.Sort(fs)
	return &report.CgroupView{Title: fmt.Sprintf("memdiag cgroup: %s (cgroup v%d)", dir, g.Version), Source: dir, Group: g, Members: members,
		Findings: fs, AnonByKind: anonByKind(o.ProcRoot, members)}, nil
}

// anonByKind splits the anonymous memory of the cgroup's largest
// processes by what pmap makes of their smaps: glibc arenas, the brk heap,
// other anonymous memory (large malloc chunks, runtimes' heaps), stacks. A
// smaps read walks page tables, so it is done for the five largest only,
// and not for one over 8 GiB of RSS.
func anonByKind(procRoot string, members []memcg.Member) []report.MemberAnon {
	const most, rssCap = 5, 8 << 30
	ms := append([]memcg.Member{}, members...)
	sort.Slice(ms, func(i, j int) bool { return ms[i].AnonBytes > ms[j].AnonBytes })
	fsys, err := pmap.NewFS(procRoot)
	if err != nil {
		return nil
	}
	var out []report.MemberAnon
	for _, m := range ms[:min(most, len(ms))] {
		a := report.MemberAnon{PID: m.PID, Command: m.Command, AnonBytes: m.AnonBytes, ByKind: map[string]uint64{}}
		if m.RSSBytes > rssCap {
			a.Skipped = "RSS over 8 GiB: smaps not read"
			out = append(out, a)
			continue
		}
		p, err := fsys.ReadPID(m.PID)
		if err != nil {
			a.Skipped = err.Error()
			out = append(out, a)
			continue
		}
		pmap.Classify(p.Mappings, p.Hints)
		for _, c := range pmap.Summarize(p.Mappings).Classes {
			kind := string(c.Class)
			if c.Class == pmap.ClassStack {
				kind = string(pmap.ClassThreadStack)
			}
			if n := c.Bytes(pmap.FieldAnonymous); n > 0 {
				a.ByKind[kind] += n
			}
		}
		out = append(out, a)
	}
	return out
}

// jvmOverLimit finds the JVMs of the cgroup whose maximum heap, non-heap
// and direct buffers together exceed the cgroup's limit: the kernel kills
// such a JVM before it would throw OutOfMemoryError ("exit 137 while the
// heap was 95 % free"). It reads hsperfdata only — no attach, no signal —
// and the JVM's command line for -XX:MaxDirectMemorySize.
func jvmOverLimit(procRoot string, g *memcg.Group, members []memcg.Member) []finding.Finding {
	if g.LimitBytes == 0 {
		return nil
	}
	var fs []finding.Finding
	for _, m := range members {
		if ok, _ := jmx.IsJVM(procRoot, m.PID); !ok {
			continue
		}
		mem, err := jmx.ReadPID(context.Background(), m.PID, jmx.ReadOptions{ProcRoot: procRoot, NoAttach: true, Timeout: 5 * time.Second})
		if err != nil || mem.Heap.MaxBytes == nil {
			continue
		}
		heapMax := *mem.Heap.MaxBytes
		direct, directFrom := heapMax, "the default: the maximum heap"
		if v, ok := maxDirectFromCmdline(procRoot, m.PID); ok {
			direct, directFrom = v, "-XX:MaxDirectMemorySize"
		}
		nonHeap := mem.NonHeap.CommittedBytes
		total := heapMax + nonHeap + direct
		if total <= g.LimitBytes {
			continue
		}
		fs = append(fs, finding.Finding{
			ID: "jvm-max-over-limit", Severity: finding.High, Bytes: total - g.LimitBytes,
			Summary: fmt.Sprintf("JVM %d (%s) may grow to %s — heap max %s + non-heap %s + direct buffers up to %s — past the cgroup's %s limit: the kernel kills it before the JVM throws OutOfMemoryError",
				m.PID, m.Command, humanize.Bytes(total), humanize.Bytes(heapMax), humanize.Bytes(nonHeap), humanize.Bytes(direct), humanize.Bytes(g.LimitBytes)),
			Evidence: []string{fmt.Sprintf("hsperfdata of process %d: heap max %d B, non-heap committed %d B; direct limit %d B (%s); cgroup limit %d B", m.PID, heapMax, nonHeap, direct, directFrom, g.LimitBytes)},
			Advice: []string{
				"Size the heap below the limit less native memory: -XX:MaxRAMPercentage=60 (or -Xmx) leaves room for metaspace, code cache, threads and malloc.",
				"Bound direct buffers explicitly: -XX:MaxDirectMemorySize (the default is the heap's maximum).",
			},
		})
	}
	return fs
}

// maxDirectFromCmdline reads -XX:MaxDirectMemorySize from the JVM's
// command line (bounded: ARG_MAX is 2 MiB).
func maxDirectFromCmdline(procRoot string, pid int) (uint64, bool) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	for _, arg := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(arg, []byte("-XX:MaxDirectMemorySize=")); ok {
			if n, err := humanize.ParseBytes(jvmSize(string(v))); err == nil {
				return n, true
			}
		}
	}
	return 0, false
}

// jvmSize turns a JVM size ("512m", "2g", "1048576") into what
// humanize.ParseBytes reads.
func jvmSize(v string) string {
	if v == "" {
		return v
	}
	switch v[len(v)-1] {
	case 'k', 'K':
		return v[:len(v)-1] + "KiB"
	case 'm', 'M':
		return v[:len(v)-1] + "MiB"
	case 'g', 'G':
		return v[:len(v)-1] + "GiB"
	case 't', 'T':
		return v[:len(v)-1] + "TiB"
	}
	return v
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
	memcg.Verify(reports, memcg.VerifyOptions{Live: live, ProcRoot: o.ProcRoot, SysRoot: o.SysRoot})
	if !o.All {
		reports = reports[len(reports)-1:]
	}
	var boot time.Time // zero unless the log is this boot's
	if live {
		boot, _ = memcg.BootTime(procRootOr(o.ProcRoot))
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
