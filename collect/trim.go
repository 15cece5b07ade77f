package collect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/report"
)

// TrimRequest says which process `memdiag trim` trims, and how.
type TrimRequest struct {
	Proc   proc.FS // the proc filesystem (the zero value: /proc)
	PID    int
	DryRun bool
	NoJVM  bool // trim a JVM's allocator through gdb, not its attach socket
	// NoGDB calls the allocator without gdb (ptrace, proven on a canary).
	NoGDB   bool
	Timeout time.Duration
	// Notify is told of each step that pauses the process or waits.
	Notify func(string)
}

// Trim is one trim on its way: what is called, and what was measured.
// PlanTrim makes it; Run calls and measures.
type Trim struct {
	r TrimRequest
	// View is what was decided and measured so far.
	View    *report.TrimView
	det     allocator.Detection
	useJVM  bool   // through the JVM's attach socket, not ptrace
	started string // the process's start time, to tell it from a later one
	live    allocator.Live
	// keptBefore asks jemalloc or tcmalloc what it keeps; nil otherwise.
	keptBefore func(ctx context.Context) (uint64, error)
}

// PlanTrim reads the process and decides what to call, and how: with
// DryRun, all there is to do.
func PlanTrim(r TrimRequest) (*Trim, error) {
	before, err := readStatus(r.Proc, r.PID)
	if err != nil {
		return nil, err
	}
	started, err := startTime(r.Proc, r.PID)
	if err != nil {
		return nil, err
	}
	det, err := allocator.Detect(r.Proc, r.PID)
	if err != nil {
		return nil, err
	}
	isJVM, _ := jmx.IsJVM(r.Proc, r.PID)
	t := &Trim{r: r, det: det, started: started,
		useJVM: isJVM && !r.NoJVM && det.Kind == allocator.Glibc,
		View: &report.TrimView{PID: r.PID, Command: before.Name, Allocator: string(det.Kind), DryRun: r.DryRun,
			RSSBefore: before.RSSBytes, AnonBefore: before.RSSAnonBytes}}
	if r.DryRun {
		t.View.Notes = []string{"nothing was called: --dry-run"}
	}
	if t.useJVM {
		t.View.Call, t.View.How = "System.trim_native_heap", "the JVM's attach socket (no ptrace; the JVM calls malloc_trim itself)"
		return t, nil
	}
	call, ok := allocator.TrimCall(det.Kind)
	if elfinfo.IsGoFile(r.Proc.PIDPath(r.PID, "exe"), 2*time.Second) {
		return nil, fmt.Errorf("process %d is a Go program: %w: its heap is the Go runtime's, which no allocator call from outside returns (memdiag runs nothing in a goroutine's stack). The runtime returns idle heap itself, slowly, through its scavenger; sooner where the program calls debug.FreeOSMemory() (from an admin endpoint, say) or runs with GOMEMLIMIT set; memdiag explain --pid %d --expvar URL says how much is idle", r.PID, allocator.ErrUnsupported, r.PID)
	}
	if !ok {
		return nil, fmt.Errorf("process %d: %w: no glibc, jemalloc or tcmalloc library is mapped (a static binary, musl, or another allocator)", r.PID, allocator.ErrUnsupported)
	}
	t.View.Call, t.View.How = call, gdbHow
	if r.NoGDB {
		t.View.How, t.View.WithoutGDB = ptraceHow, true
	}
	return t, nil
}

// How a trim is made: gdb, unless it was refused (missing, or failing its
// canary on this host) or --no-gdb asked for ptrace.
const (
	gdbHow    = "gdb (the process pauses while attached)"
	ptraceHow = "ptrace, without gdb (one thread pauses for the call)"
)

// Run measures, trims and measures again.
func (t *Trim) Run(ctx context.Context) error {
	if err := t.before(ctx); err != nil {
		return err
	}
	if err := t.call(ctx); err != nil {
		return err
	}
	return t.after(ctx)
}

// before measures what the allocator says it keeps (a JVM is not
// ptraced), then RSS.
func (t *Trim) before(ctx context.Context) error {
	r, v := t.r, t.View
	// One canary for the calls before, of and after the trim: gdb (or the
	// calls without it) is proven once.
	inj := gdbinject.Injector{Proc: r.Proc, Timeout: r.Timeout, Notify: r.Notify, Canary: &gdbinject.Canary{}}
	t.live = allocator.Live{Injector: inj, NoGDB: r.NoGDB, Canary: &allocator.PtraceCanary{}}
	switch {
	case t.useJVM:
	case t.det.Kind == allocator.Glibc:
		info, err := mallocinfo.Capturer{Proc: r.Proc, Timeout: r.Timeout, Notify: r.Notify}.Capture(ctx, r.PID)
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
			s, err := t.live.Capture(ctx, r.PID, t.det)
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
	if now, err := readStatus(r.Proc, r.PID); err == nil {
		v.RSSBefore, v.AnonBefore = now.RSSBytes, now.RSSAnonBytes
	}
	return nil
}

// call makes the allocator (or the JVM) give its free memory back.
func (t *Trim) call(ctx context.Context) error {
	r := t.r
	if !t.useJVM {
		paused, withoutGDB, err := t.live.Trim(ctx, r.PID, t.det)
		t.View.Paused = paused
		if withoutGDB {
			t.View.How, t.View.WithoutGDB = ptraceHow, true
		}
		return err
	}
	reply, err := jmx.Attacher{Proc: r.Proc, Timeout: r.Timeout, Notify: r.Notify}.TrimNativeHeap(ctx, r.PID)
	if errors.Is(err, jmx.ErrNoTrimNativeHeap) {
		return fmt.Errorf("process %d: %w; --no-jvm calls malloc_trim through gdb instead", r.PID, err)
	}
	if err != nil {
		return err
	}
	t.View.Notes = append(t.View.Notes, "the JVM said: "+reply)
	return nil
}

// after measures RSS again, and what the allocator keeps now.
func (t *Trim) after(ctx context.Context) error {
	r, v := t.r, t.View
	after, err := readStatus(r.Proc, r.PID)
	if err != nil {
		return err
	}
	// The figures after are the same process's only if its pid was not
	// reused meanwhile.
	if now, err := startTime(r.Proc, r.PID); err != nil || now != t.started {
		return fmt.Errorf("process %d exited during the trim (its pid is another process's now): nothing to measure", r.PID)
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

func readStatus(fsys proc.FS, pid int) (proc.IDs, error) {
	ids, err := fsys.Status(pid)
	if err != nil {
		return ids, fmt.Errorf("process %d: %w", pid, gdbinject.ErrNoProcess)
	}
	return ids, nil
}

// startTime is field 22 of /proc/PID/stat: with the pid, it tells a
// process from a later one given the same pid.
func startTime(fsys proc.FS, pid int) (string, error) {
	start, _, err := fsys.StartTime(pid)
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, gdbinject.ErrNoProcess)
	}
	return start, nil
}
