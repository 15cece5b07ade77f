package collect

import (
	"io"
	"runtime"
	"strings"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/pmap"
	"github.com/memdiag/memdiag/syscalltrace"
)

// Traces are opened syscall traces; Close closes every file.
type Traces struct {
	Inputs []*syscalltrace.Input
	files  []io.Closer
}

// Close closes the traces and their files; a nil *Traces is none.
func (t *Traces) Close() {
	if t == nil {
		return
	}
	for _, in := range t.Inputs {
		in.Close()
	}
	for _, f := range t.files {
		f.Close()
	}
}

// OpenTraces opens trace files (as syscalltrace.Expand lists them, with
// the pid of each strace -ff file), in format or detected. wrap, when set,
// wraps each file as it is read (a progress meter). On error what was
// opened is closed.
func OpenTraces(files []string, pids map[string]int, format syscalltrace.Format, wrap func(io.Reader) io.Reader) (*Traces, error) {
	t := &Traces{}
	for _, path := range files {
		f, err := input.Open(path)
		if err != nil {
			t.Close()
			return nil, err
		}
		t.files = append(t.files, f)
		var r io.Reader = f
		if wrap != nil {
			r = wrap(f)
		}
		in, err := syscalltrace.OpenFile(path, r, format, pids[path])
		if err != nil {
			t.Close()
			return nil, err
		}
		t.Inputs = append(t.Inputs, in)
	}
	return t, nil
}

// trace replays the syscall traces: what was mapped and never unmapped,
// weighed by smaps.
func (c *collection) trace() error {
	files, pids, err := syscalltrace.Expand(c.r.TraceFiles)
	if err != nil {
		return err
	}
	t, err := OpenTraces(files, pids, syscalltrace.FormatAuto, nil)
	if err != nil {
		return err
	}
	defer t.Close()
	src, stop := syscalltrace.Combine(t.Inputs, runtime.GOMAXPROCS(0))
	defer stop()
	replay := syscalltrace.NewReplay(true)
	if err := replay.ApplyAll(src); err != nil {
		return err
	}
	c.traceInto(strings.Join(c.r.TraceFiles, " "), replay, replay.Outstanding())
	return nil
}

// traceInto joins the mappings a replay left outstanding with smaps: the
// trace evidence (of a trace file, or of memdiag record).
func (c *collection) traceInto(source string, replay *syscalltrace.Replay, outstanding []*syscalltrace.Mapping) {
	out := leakCandidates(outstanding, c.in.JVM != nil)
	resident := syscalltrace.JoinSmaps(out, plainAnon(c.ms))
	groups := syscalltrace.Groups(out, syscalltrace.GroupAuto, resident)
	c.in.FromTrace(source, out, resident, groups, syscalltrace.Findings(out, groups, &replay.Stats, source, true))
}

// plainAnon is the plain anonymous memory of ms: only it can be a leak.
// What smaps classes as a glibc arena, a thread stack or the JVM's heap and
// native memory is claimed by the categories that account for it.
func plainAnon(ms []pmap.Mapping) []pmap.Mapping {
	var plain []pmap.Mapping
	for _, m := range ms {
		if m.Class == pmap.ClassAnon {
			plain = append(plain, m)
		}
	}
	return plain
}

// leakCandidates drops, in a JVM, the mappings the JVM made itself (a
// libjvm.so frame on their stack: its heap, metaspace and code cache
// reservations and commits), which its heap range and NMT account for.
func leakCandidates(out []*syscalltrace.Mapping, jvm bool) []*syscalltrace.Mapping {
	if !jvm {
		return out
	}
	kept := out[:0:0]
	for _, m := range out {
		if !m.MadeBy("libjvm.so") {
			kept = append(kept, m)
		}
	}
	return kept
}
