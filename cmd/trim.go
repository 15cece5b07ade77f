package cmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/report"
)

// TrimOptions is `memdiag trim` after flag parsing.
type TrimOptions struct {
	Streams  *Streams
	ProcRoot string

	PID    int
	DryRun bool
	NoJVM  bool // trim a JVM's allocator through gdb, not its attach socket
	// NoGDB calls the allocator without gdb (ptrace, proven on a canary).
	NoGDB   bool
	Timeout time.Duration
	Format  report.Format
	Color   bool
	Width   int // what tables must fit in (0: no limit)
}

// NewCmdTrim builds `memdiag trim`.
func NewCmdTrim(d *Deps, g *globalOptions, runF func(*TrimOptions) error) *cobra.Command {
	o := &TrimOptions{Streams: d.Streams, ProcRoot: d.ProcRoot}
	c := &cobra.Command{
		Use:   "trim --pid PID",
		Short: "Make a process's allocator give its free memory back, and measure what came back",
		Long: `Make the allocator of a live process return the free memory it holds to the
OS, and measure it: RSS and anonymous RSS before and after, beside what the
allocator (and explain) said it kept.

What is called:
  glibc      malloc_trim(0)                       through gdb
  jemalloc   mallctl("arena.4096.purge")          through gdb (every arena)
  tcmalloc   MallocExtension_ReleaseFreeMemory()  through gdb
  a JVM      jcmd System.trim_native_heap         through its attach socket: no ptrace
             (JDK 17.0.8 and later; --no-jvm uses gdb instead)

Through gdb the process is paused while gdb is attached — said before, and
measured; gdb runs as the process's own user, with the checks of
'memdiag mallocinfo --pid' (see docs/security.md). Nothing happens without
this command: no other memdiag command trims. --dry-run says what it would
call, and how, and does nothing.`,
		Example: `  memdiag trim --pid 1234 --dry-run
  memdiag trim --pid 1234
  memdiag trim --pid 1234 -o json | jq '.rss_before_bytes - .rss_after_bytes'`,
		Args: func(c *cobra.Command, args []string) error {
			switch {
			case len(args) > 0:
				return usage(fmt.Errorf("trim takes --pid PID, not arguments (got %q)", args[0]))
			case o.PID <= 0:
				return usage(errors.New("trim needs --pid PID"))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			var err error
			if o.Format, err = g.format(); err != nil {
				return err
			}
			o.Color = d.Streams.colorEnabled(g.noColor)
			o.Width = d.Streams.tableWidth(g.wide)
			if runF != nil {
				return runF(o)
			}
			return runTrim(o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.PID, "pid", 0, "the process to trim")
	f.BoolVar(&o.DryRun, "dry-run", false, "say what would be called, and how, and do nothing")
	f.BoolVar(&o.NoJVM, "no-jvm", false, "for a JVM: call its allocator through gdb, not System.trim_native_heap")
	f.BoolVar(&o.NoGDB, "no-gdb", false, "call the allocator in one thread of the process with ptrace, not through gdb (proven first on a process of memdiag's own; also used where gdb is missing)")
	f.DurationVar(&o.Timeout, "timeout", 30*time.Second, "interrupt a call that has not returned after this long")
	return c
}

func readStatus(procRoot string, pid int) (proc.IDs, error) {
	ids, err := proc.ReadStatus(filepath.Join(procRoot, strconv.Itoa(pid)), pid)
	if err != nil {
		return ids, fmt.Errorf("process %d: %w", pid, gdbinject.ErrNoProcess)
	}
	return ids, nil
}

func runTrim(o *TrimOptions) error {
	t, err := planTrim(o)
	if err != nil {
		return err
	}
	if o.DryRun {
		t.v.Notes = append(t.v.Notes, "nothing was called: --dry-run")
		return report.WriteTrim(o.Streams.Out, o.Format, t.v, report.Style{Color: o.Color, Width: o.Width})
	}
	ctx, stop := interruptible()
	defer stop()
	if err := t.before(ctx); err != nil {
		return err
	}
	if err := t.call(ctx); err != nil {
		return err
	}
	if err := t.after(ctx); err != nil {
		return err
	}
	return report.WriteTrim(o.Streams.Out, o.Format, t.v, report.Style{Color: o.Color, Width: o.Width})
}

// trimRun is one trim on its way: what is called, and what was measured.
type trimRun struct {
	o        *TrimOptions
	procRoot string
	v        *report.TrimView
	det      allocator.Detection
	useJVM   bool   // through the JVM's attach socket, not ptrace
	started  string // the process's start time, to tell it from a later one
	notify   func(string)
	live     allocator.Live
	// keptBefore asks jemalloc or tcmalloc what it keeps; nil otherwise.
	keptBefore func(ctx context.Context) (uint64, error)
}

// planTrim reads the process and decides what to call, and how.
func planTrim(o *TrimOptions) (*trimRun, error) {
	procRoot := proc.NewFS(o.ProcRoot).Root()
	before, err := readStatus(procRoot, o.PID)
	if err != nil {
		return nil, err
	}
	started, err := startTime(procRoot, o.PID)
	if err != nil {
		return nil, err
	}
	det, err := allocator.Detect(proc.NewFS(procRoot), o.PID)
	if err != nil {
		return nil, err
	}
	isJVM, _ := jmx.IsJVM(proc.NewFS(procRoot), o.PID)
	t := &trimRun{o: o, procRoot: procRoot, det: det, started: started, notify: notifier(o.Streams.ErrOut),
		useJVM: isJVM && !o.NoJVM && det.Kind == allocator.Glibc,
		v: &report.TrimView{PID: o.PID, Command: before.Name, Allocator: string(det.Kind), DryRun: o.DryRun,
			RSSBefore: before.RSSBytes, AnonBefore: before.RSSAnonBytes}}
	if t.useJVM {
		t.v.Call, t.v.How = "System.trim_native_heap", "the JVM's attach socket (no ptrace; the JVM calls malloc_trim itself)"
		return t, nil
	}
	call, ok := allocator.TrimCall(det.Kind)
	if elfinfo.IsGoFile(filepath.Join(procRoot, strconv.Itoa(o.PID), "exe"), 2*time.Second) {
		return nil, fmt.Errorf("process %d is a Go program: %w: its heap is the Go runtime's, which no allocator call from outside returns (memdiag runs nothing in a goroutine's stack). The runtime returns idle heap itself, slowly, through its scavenger; sooner where the program calls debug.FreeOSMemory() (from an admin endpoint, say) or runs with GOMEMLIMIT set; memdiag explain --pid %d --expvar URL says how much is idle", o.PID, allocator.ErrUnsupported, o.PID)
	}
	if !ok {
		return nil, fmt.Errorf("process %d: %w: no glibc, jemalloc or tcmalloc library is mapped (a static binary, musl, or another allocator)", o.PID, allocator.ErrUnsupported)
	}
	t.v.Call, t.v.How = call, "gdb (the process pauses while attached)"
	if o.NoGDB {
		t.v.How = "ptrace, without gdb (one thread pauses for the call)"
	}
	return t, nil
}

// before measures what the allocator says it keeps (a JVM is not
// ptraced), then RSS.
func (t *trimRun) before(ctx context.Context) error {
	o, v := t.o, t.v
	// One canary for the calls before, of and after the trim: gdb (or the
	// calls without it) is proven once.
	inj := gdbinject.Injector{Proc: proc.NewFS(o.ProcRoot), Timeout: o.Timeout, Notify: t.notify, Canary: &gdbinject.Canary{}}
	t.live = allocator.Live{Injector: inj, NoGDB: o.NoGDB, Canary: &allocator.PtraceCanary{}}
	switch {
	case t.useJVM:
	case t.det.Kind == allocator.Glibc:
		info, err := mallocinfo.Capturer{ProcRoot: o.ProcRoot, Timeout: o.Timeout, Notify: t.notify}.Capture(ctx, o.PID)
		if err != nil {
			return fmt.Errorf("before the trim: %w", err)
		}
		s := mallocinfo.Analyze(info)
		ret := s.Totals.RetainedFreeBytes
		v.RetainedBefore = &ret
		v.Notes = append(v.Notes, fmt.Sprintf("malloc_info before: %s free in %d arenas, %s of it retained below live chunks, %s in top chunks",
			report.Bytes(s.Totals.FreeBytes), s.Totals.Arenas, report.Bytes(ret), report.Bytes(s.Totals.TopBytes)))
	default:
		t.keptBefore = func(ctx context.Context) (uint64, error) {
			s, err := t.live.Capture(ctx, o.PID, t.det)
			if err != nil {
				return 0, err
			}
			return s.TrimmableBytes(), nil
		}
		n, err := t.keptBefore(ctx)
		if err != nil {
			return fmt.Errorf("before the trim: %w", err)
		}
		v.KeptBefore = &n
		v.KeptWhat = t.det.Kind.Trimmable()
	}
	if now, err := readStatus(t.procRoot, o.PID); err == nil {
		v.RSSBefore, v.AnonBefore = now.RSSBytes, now.RSSAnonBytes
	}
	return nil
}

// call makes the allocator (or the JVM) give its free memory back.
func (t *trimRun) call(ctx context.Context) error {
	o := t.o
	if !t.useJVM {
		paused, err := t.live.Trim(ctx, o.PID, t.det)
		t.v.Paused = paused
		return err
	}
	reply, err := jmx.Attacher{Proc: proc.NewFS(o.ProcRoot), Timeout: o.Timeout, Notify: t.notify}.TrimNativeHeap(ctx, o.PID)
	if errors.Is(err, jmx.ErrNoTrimNativeHeap) {
		return fmt.Errorf("process %d: %w; --no-jvm calls malloc_trim through gdb instead", o.PID, err)
	}
	if err != nil {
		return err
	}
	t.v.Notes = append(t.v.Notes, "the JVM said: "+reply)
	return nil
}

// after measures RSS again, and what the allocator keeps now.
func (t *trimRun) after(ctx context.Context) error {
	o, v := t.o, t.v
	after, err := readStatus(t.procRoot, o.PID)
	if err != nil {
		return err
	}
	// The figures after are the same process's only if its pid was not
	// reused meanwhile.
	if now, err := startTime(t.procRoot, o.PID); err != nil || now != t.started {
		return fmt.Errorf("process %d exited during the trim (its pid is another process's now): nothing to measure", o.PID)
	}
	v.RSSAfter, v.AnonAfter = after.RSSBytes, after.RSSAnonBytes
	if t.keptBefore != nil {
		n, err := t.keptBefore(ctx)
		if err != nil {
			v.Notes = append(v.Notes, "after the trim, the allocator could not be asked: "+err.Error())
		} else {
			v.KeptAfter = &n
		}
	}
	return nil
}

// startTime is field 22 of /proc/PID/stat: with the pid, it tells a
// process from a later one given the same pid.
func startTime(procRoot string, pid int) (string, error) {
	start, _, err := proc.StartTime(filepath.Join(procRoot, strconv.Itoa(pid)))
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, gdbinject.ErrNoProcess)
	}
	return start, nil
}
