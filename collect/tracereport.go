package collect

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/report"
	"github.com/memdiag/memdiag/syscalltrace"
)

// TraceRequest is what `memdiag trace` replays, and how.
type TraceRequest struct {
	Proc    proc.FS  // the proc filesystem (the zero value: /proc)
	Paths   []string // files or directories (strace -ff); "-" for In
	In      io.Reader
	Trace   syscalltrace.Format
	GroupBy syscalltrace.GroupBy
	// At, with HasAt, ends the replay at this time as the trace prints it.
	At         float64
	HasAt      bool
	PprofPath  string
	SmapsPath  string
	PID        int
	PerProcess bool
	Top        int
	// Progress, when set, is told the files' total size before they are
	// read, and may wrap each (to show how far reading is); stop ends it.
	Progress func(total int64) (wrap func(io.Reader) io.Reader, stop func())
}

// Trace replays r's traces and returns what was mapped and never
// unmapped, grouped, joined with smaps when asked, with its findings;
// with PprofPath it also writes the profile.
func Trace(r *TraceRequest) (*report.TraceView, error) {
	t, stopProgress, err := r.open()
	defer stopProgress() // after the replay, which reads the files
	defer t.Close()
	if err != nil {
		return nil, err
	}
	replay := syscalltrace.NewReplay(!r.PerProcess)
	replay.Until, replay.HasUntil = r.At, r.HasAt
	src, stop := syscalltrace.Combine(t.Inputs, runtime.GOMAXPROCS(0))
	defer stop()
	if err := replay.ApplyAll(src); err != nil {
		return nil, err
	}
	v := &report.TraceView{Source: strings.Join(r.Paths, " "), Format: string(t.Inputs[0].Format), Replay: replay, GroupLimit: r.Top}
	if replay.Stats.Events == 0 && replay.HasStoppedAt {
		return nil, fmt.Errorf("%s: no memory system call at or before --at %g s; the first is at %g s as the trace prints time (seconds since midnight for HH:MM:SS stamps)", v.Source, r.At, replay.StoppedAt)
	}
	if replay.Stats.Events == 0 {
		return nil, fmt.Errorf("%s: no memory system calls in the trace (was it captured with -e trace=memory, or perf trace -e mmap,munmap…?)", v.Source)
	}
	traceNotes(v, t.Inputs)
	v.Outstanding = replay.Outstanding()
	if r.SmapsPath != "" || r.PID != 0 {
		vmas, err := r.smaps()
		if err != nil {
			return nil, err
		}
		v.Resident = syscalltrace.JoinSmaps(v.Outstanding, vmas)
	}
	v.GroupBy = r.GroupBy.Resolve(v.Outstanding)
	v.Groups = syscalltrace.Groups(v.Outstanding, v.GroupBy, v.Resident)
	v.Findings = syscalltrace.Findings(v.Outstanding, v.Groups, &replay.Stats, v.Source, v.Resident != nil)
	if r.PprofPath != "" {
		if err := atomicfile.Write(r.PprofPath, 0o644, func(w io.Writer) error {
			return syscalltrace.WriteProfile(w, v.Outstanding, v.Resident)
		}); err != nil {
			return nil, fmt.Errorf("writing %s: %w", r.PprofPath, err)
		}
		v.Notes = append(v.Notes, fmt.Sprintf("profile written: go tool pprof -sample_index=outstanding -top %s", r.PprofPath))
	}
	return v, nil
}

// open opens the traces: standard input, or the files (a directory of
// strace -ff files expanded), with r.Progress told their size; stop
// ends the progress.
func (r *TraceRequest) open() (t *Traces, stop func(), err error) {
	stop = func() {}
	if len(r.Paths) == 1 && r.Paths[0] == "-" {
		in, err := syscalltrace.OpenFile("-", r.In, r.Trace, 0)
		if err != nil {
			return nil, stop, err
		}
		return &Traces{Inputs: []*syscalltrace.Input{in}}, stop, nil
	}
	files, pids, err := syscalltrace.Expand(r.Paths)
	if err != nil {
		return nil, stop, err
	}
	var wrap func(io.Reader) io.Reader
	if r.Progress != nil {
		var total int64
		for _, path := range files {
			if fi, err := os.Stat(path); err == nil {
				total += fi.Size()
			}
		}
		wrap, stop = r.Progress(total)
	}
	t, err = OpenTraces(files, pids, r.Trace, wrap)
	return t, stop, err
}

// traceNotes warns of what the replay skipped and the tracers lost.
func traceNotes(v *report.TraceView, inputs []*syscalltrace.Input) {
	if n := v.Replay.Stats.Invalid; n > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("warning: skipped %d calls no kernel completes — a range past the top of the address space, an mmap of no bytes (a corrupt trace?)", n))
	}
	for _, in := range inputs {
		if n := in.Lost(); n > 0 {
			v.Notes = append(v.Notes, fmt.Sprintf("warning: %s: the tracer lost %d events; mappings made or released by them are missing from the replay (raise perf's buffer with -m)", in.Name, n))
		}
		if n, first := in.Foreign(); n > 0 {
			v.Notes = append(v.Notes, fmt.Sprintf("%s: skipped %d lines that are not %s output (first at line %d: the program's own output?)", in.Name, n, in.Format, first))
		}
	}
}

// smaps reads the mappings to join: the live process's, or a saved file.
func (r *TraceRequest) smaps() ([]pmap.Mapping, error) {
	if r.PID != 0 {
		p, err := LiveProcess(r.Proc, r.PID)
		if err != nil {
			return nil, err
		}
		return p.Mappings, nil
	}
	return SmapsFile(r.SmapsPath, r.In)
}
