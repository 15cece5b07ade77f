package collect

import (
	"context"
	"io"
	"time"

	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/promtext"
	"github.com/memdiag/memdiag/jmx"
)

// JVMSources are the places a JVM's accounting can be read from.
type JVMSources struct {
	Proc proc.FS // the proc filesystem (the zero value: /proc)
	// PID is a live JVM: its hsperfdata, and unless NoAttach its attach
	// socket.
	PID      int
	NoAttach bool
	Jolokia  *jmx.Jolokia
	// Prometheus is a URL or a saved page of jvm_memory_* metrics;
	// PrometheusMemory, such a page already read (Inputs reads one page
	// for whichever runtime's metrics it holds).
	Prometheus       string
	PrometheusMemory *jmx.JVMMemory
	HeapInfoFile     string // saved jcmd GC.heap_info
	NMTFile          string // saved jcmd VM.native_memory summary
	// Timeout bounds each live read: the attach listener, Prometheus.
	Timeout time.Duration
	Notify  func(msg string)
}

// The sources a JVMFailure names.
const (
	SourceJVMProcess = "process"
	SourceJolokia    = "jolokia"
	SourcePrometheus = "prometheus"
)

// JVMFailure is a live source that could not be read.
type JVMFailure struct {
	Source string // SourceJVMProcess, SourceJolokia or SourcePrometheus
	Err    error
}

// ReadJVM merges every source given into one account, nil when none is
// given. The policy is the same for every caller:
//   - sources are merged live first — the process, Jolokia, Prometheus —
//     then the saved files; the first to know a figure gives it, and every
//     pool is kept with its source;
//   - a live source may be down a while: its failure is returned in
//     failures and the others are merged;
//   - a saved file is evidence the user holds: one that cannot be read is
//     the error;
//   - NMT's "Other" stands in for the direct buffers when no source gave
//     them.
func ReadJVM(ctx context.Context, s JVMSources) (m *jmx.JVMMemory, failures []JVMFailure, err error) {
	merge := func(o *jmx.JVMMemory) {
		if m == nil {
			m = o
		} else {
			m.Merge(o)
		}
	}
	failed := func(source string, err error) { failures = append(failures, JVMFailure{source, err}) }
	if s.PID != 0 {
		o, err := jmx.ReadPID(ctx, s.PID, jmx.ReadOptions{Proc: s.Proc, NoAttach: s.NoAttach, Timeout: s.Timeout, Notify: s.Notify})
		if err != nil {
			failed(SourceJVMProcess, err)
		} else {
			merge(o)
		}
	}
	if s.Jolokia != nil {
		if o, err := s.Jolokia.Read(ctx); err != nil {
			failed(SourceJolokia, err)
		} else {
			merge(o)
		}
	}
	switch {
	case s.PrometheusMemory != nil:
		merge(s.PrometheusMemory)
	case s.Prometheus != "":
		o, err := readPrometheus(ctx, s.Prometheus, s.Timeout)
		switch {
		case err != nil && !promtext.IsURL(s.Prometheus):
			return nil, nil, err
		case err != nil:
			failed(SourcePrometheus, err)
		default:
			merge(o)
		}
	}
	files, err := jvmFiles(s.HeapInfoFile, s.NMTFile)
	if err != nil {
		return nil, nil, err
	}
	merge(files)
	if m != nil {
		m.AddNMTDirect()
	}
	return m, failures, nil
}

// readPrometheus reads a Prometheus page within timeout: an endpoint that
// accepts the connection and never answers must not hang the command.
func readPrometheus(ctx context.Context, target string, timeout time.Duration) (*jmx.JVMMemory, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	return jmx.ReadPrometheus(ctx, target)
}

// jvmFiles reads saved jcmd output into one account, nil when neither
// file is given.
func jvmFiles(heapInfoFile, nmtFile string) (*jmx.JVMMemory, error) {
	if heapInfoFile == "" && nmtFile == "" {
		return nil, nil
	}
	m := &jmx.JVMMemory{}
	if heapInfoFile != "" {
		hi, err := readWith(heapInfoFile, jmx.ParseHeapInfo)
		if err != nil {
			return nil, err
		}
		m.ApplyHeapInfo(hi, heapInfoFile)
	}
	if nmtFile != "" {
		n, err := readWith(nmtFile, jmx.ParseNMT)
		if err != nil {
			return nil, err
		}
		m.NMT, m.Sources = n, append(m.Sources, nmtFile)
	}
	return m, nil
}

// readWith opens path (a file, or a compressed one) and parses it.
func readWith[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := input.Open(path)
	if err != nil {
		var zero T
		return zero, err
	}
	defer f.Close()
	return parse(f, path)
}
