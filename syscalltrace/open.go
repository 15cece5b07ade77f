package syscalltrace

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/heap"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Format names a trace format.
type Format string

// The formats memdiag reads.
const (
	FormatAuto       Format = ""
	FormatStrace     Format = "strace"
	FormatPerfTrace  Format = "perf-trace"
	FormatBpftrace   Format = "bpftrace" // the output of docs/memdiag-mmap.bt
	FormatSysdig     Format = "sysdig"
	FormatSysdigJSON Format = "sysdig-json"
)

// Reader yields events in trace order; io.EOF at the end. An event is
// valid until the reader's next call: readers reuse them, so whoever keeps
// one copies it.
type Reader interface {
	Next() (*Event, error)
}

// Detect names the format of a trace from its first lines, or returns
// ErrUnrecognized. Each format's test says "mine" only on a line only it writes.
func Detect(head []byte, name string) (Format, error) {
	sc := bufio.NewScanner(bytes.NewReader(head))
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 0; sc.Scan() && n < 200; n++ {
		line := sc.Text()
		t := strings.TrimSpace(line)
		switch {
		case t == "":
		case strings.HasPrefix(line, "memdiag call="):
			return FormatBpftrace, nil
		case strings.HasPrefix(t, "{") && strings.Contains(t, `"evt.type"`):
			return FormatSysdigJSON, nil
		case isSysdigLine(line):
			return FormatSysdig, nil
		case isPerfTraceLine(line):
			return FormatPerfTrace, nil
		case isStraceLine(t):
			return FormatStrace, nil
		}
	}
	return "", &ParseError{Name: name, Msg: "not a trace memdiag reads (strace, perf trace, sysdig, docs/memdiag-mmap.bt): no line of either in the first 200; use --format to force one", Err: ErrUnrecognized}
}

func isSysdigLine(line string) bool {
	f, ok := parseSysdigText(line)
	return ok && (f.typ != "" && strings.Contains(f.info, "=") || f.dir == '>')
}

func isPerfTraceLine(line string) bool {
	paren := strings.Index(line, " (")
	colon := strings.Index(line, "): ")
	if paren <= 0 || colon < paren {
		return false
	}
	stamp := strings.TrimSpace(line[:paren])
	_, err := strconv.ParseFloat(stamp, 64)
	return (err == nil || stamp == "?") && strings.Contains(line[colon:], "/")
}

func isStraceLine(t string) bool {
	if strings.HasPrefix(t, "[pid ") || strings.HasPrefix(t, "+++ ") || strings.HasPrefix(t, "strace: Process ") {
		return true
	}
	// "[PID ][TIME ]name(…) = …" or "… <unfinished ...>"
	fields := strings.Fields(t)
	for i := 0; i < len(fields) && i < 3; i++ {
		f := fields[i]
		if j := strings.IndexByte(f, '('); j > 0 && isIdent(f[:j]) {
			return strings.Contains(t, " = ") || strings.Contains(t, "<unfinished ...>") || strings.Contains(t, "resumed>")
		}
		if !isDigits(f) {
			if _, ok := parseStraceTime(f); !ok {
				return false
			}
		}
	}
	return false
}

// decompress sniffs gzip and zstd by their magic numbers.
func decompress(br *bufio.Reader) (io.Reader, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// Input is one opened trace file.
type Input struct {
	Name   string
	Format Format
	reader Reader
	close  func()
	// Foreign reports lines skipped as not the tracer's.
	Foreign func() (count, first int)
	// Lost reports events the tracer said it lost.
	Lost func() int

	strace *StraceReader
}

// Parallel has the input decode on workers goroutines, where its format
// allows it (strace), and reports whether it will. Call it before the first
// Next; Close stops them.
func (in *Input) Parallel(workers int) bool {
	if in.strace == nil || workers < 1 {
		return false
	}
	in.strace.Workers = workers
	return true
}

// OpenFile opens a trace, decompressing gzip/zstd and detecting its format
// unless forced. defaultTID applies to lines without a task id (a strace
// -ff file's pid).
func OpenFile(path string, r io.Reader, format Format, defaultTID int) (*Input, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	dr, closeFn, err := decompress(br)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	body := bufio.NewReaderSize(dr, 256<<10)
	if format == FormatAuto {
		head, _ := body.Peek(128 << 10)
		if format, err = Detect(head, path); err != nil {
			closeFn()
			return nil, err
		}
	}
	in := &Input{Name: path, Format: format, close: closeFn}
	switch format {
	case FormatStrace:
		s := NewStraceReader(body, path, defaultTID)
		in.reader, in.Foreign = s, func() (int, int) { return s.Foreign, s.FirstForeign }
		in.Lost = func() int { return 0 }
		in.strace = s
		// Decoding stops before the decompressor closes.
		in.close = func() { s.Close(); closeFn() }
	case FormatSysdig, FormatSysdigJSON:
		sd := NewSysdigReader(body, path)
		sd.json = format == FormatSysdigJSON
		in.reader, in.Foreign = sd, func() (int, int) { return sd.Foreign, sd.FirstForeign }
		in.Lost = func() int { return 0 }
	case FormatBpftrace:
		b := NewBpftraceReader(body, path)
		in.reader, in.Foreign = b, func() (int, int) { return b.Foreign, b.FirstForeign }
		in.Lost = func() int { return b.Lost }
	case FormatPerfTrace:
		p := NewPerfTraceReader(body, path)
		in.reader, in.Foreign = p, func() (int, int) { return p.Foreign, p.FirstForeign }
		in.Lost = func() int { return p.Lost }
	default:
		closeFn()
		return nil, fmt.Errorf("unknown trace format %q: want strace, perf-trace, sysdig, sysdig-json or bpftrace", format)
	}
	return in, nil
}

// Close releases the decompressor.
func (in *Input) Close() { in.close() }

// Next is the input's next event.
func (in *Input) Next() (*Event, error) { return in.reader.Next() }

// Expand turns the paths given on the command line into files: a
// directory means every regular file in it (strace -ff output), and one
// without any is an error. The pid of a strace -ff file ("trace.1234") is
// returned for its lines.
func Expand(paths []string) ([]string, map[string]int, error) {
	var files []string
	pids := map[string]int{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, nil, err
			}
			n := len(files)
			for _, e := range entries {
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(p, e.Name()))
				}
			}
			if len(files) == n {
				return nil, nil, fmt.Errorf("%s: a directory without a regular file in it: give trace files, or the directory strace -ff wrote them into", p)
			}
			continue
		}
		files = append(files, p)
	}
	sort.Strings(files)
	if len(files) > 1 {
		for _, f := range files {
			base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(f), ".gz"), ".zst")
			if i := strings.LastIndexByte(base, '.'); i >= 0 {
				if n, err := strconv.Atoi(base[i+1:]); err == nil {
					pids[f] = n
				}
			}
		}
	}
	return files, pids, nil
}

// Combine reads opened inputs as one: merged by time when there are
// several; a single strace input decodes on workers goroutines; otherwise
// reading runs on its own goroutine beside the caller's replay. stop ends
// what Combine started; the inputs stay the caller's to close.
func Combine(inputs []*Input, workers int) (r Reader, stop func()) {
	if len(inputs) == 0 {
		return noEvents{}, func() {}
	}
	if len(inputs) == 1 && inputs[0].Parallel(workers) {
		return inputs[0], func() {}
	}
	var src Reader = inputs[0]
	if len(inputs) > 1 {
		src = NewMerge(inputs)
	}
	p := NewPipe(src)
	return p, p.Close
}

// noEvents is the trace of no input.
type noEvents struct{}

func (noEvents) Next() (*Event, error) { return nil, io.EOF }

// Merge interleaves several inputs (strace -ff files) by time, so that the
// calls of threads sharing an address space replay in the order they ran.
// Without times the inputs are read one after the other.
type Merge struct {
	h       eventHeap
	inputs  []*Input
	started bool
	cur     Event // the event returned last: the input's own is reused
}

// NewMerge merges inputs.
func NewMerge(inputs []*Input) *Merge { return &Merge{inputs: inputs} }

type headEvent struct {
	e   *Event
	src int
}

type eventHeap []headEvent

func (h eventHeap) Len() int { return len(h) }
func (h eventHeap) Less(i, j int) bool {
	if h[i].e.Time != h[j].e.Time {
		return h[i].e.Time < h[j].e.Time
	}
	return h[i].src < h[j].src
}
func (h eventHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *eventHeap) Push(x any)   { *h = append(*h, x.(headEvent)) }
func (h *eventHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Next returns the earliest pending event of all inputs.
func (m *Merge) Next() (*Event, error) {
	if !m.started {
		m.started = true
		for i, in := range m.inputs {
			e, err := in.Next()
			if err == io.EOF {
				continue
			}
			if err != nil {
				return nil, err
			}
			heap.Push(&m.h, headEvent{e, i})
		}
	}
	if m.h.Len() == 0 {
		return nil, io.EOF
	}
	top := heap.Pop(&m.h).(headEvent)
	m.cur = *top.e
	// Line numbers of different files do not compare: order by time, and
	// with -T the completion is known too.
	m.cur.EnterKey, m.cur.DoneKey = m.cur.Time, m.cur.Time+m.cur.Duration
	e, err := m.inputs[top.src].Next()
	switch {
	case err == nil:
		heap.Push(&m.h, headEvent{e, top.src})
	case err != io.EOF:
		return nil, err
	}
	return &m.cur, nil
}
