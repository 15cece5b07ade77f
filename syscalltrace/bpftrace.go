package syscalltrace

import (
	"container/heap"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// BpftraceReader reads the output of docs/memdiag-mmap.bt: one
// "memdiag call=… key=value…" line per call, printed at its exit with its
// entry and exit times in nanoseconds, followed by its user stack
// ("\t<hex> sym+off (module)", innermost first). bpftrace prints from
// per-CPU buffers, so a window puts calls back in order of entry.
type BpftraceReader struct {
	lr     *lineReader
	held   *Event
	err    error // io.EOF or the first error, returned once the window is drained
	window eventHeap
	seq    int
	// Foreign counts lines that are not the script's (the traced command's
	// own output, bpftrace's messages).
	Foreign      int
	FirstForeign int
	// Lost counts events bpftrace reported lost.
	Lost   int
	intern interner
}

// NewBpftraceReader reads docs/memdiag-mmap.bt output from r.
func NewBpftraceReader(r io.Reader, name string) *BpftraceReader {
	return &BpftraceReader{lr: newLineReader(r, name), intern: interner{}}
}

// Next returns the next event in order of entry, or io.EOF.
func (b *BpftraceReader) Next() (*Event, error) {
	for {
		if b.window.Len() > reorderWindow {
			return heap.Pop(&b.window).(headEvent).e, nil
		}
		if b.err != nil {
			// The end, or a bad line: what was read before it is
			// delivered first.
			b.flush()
			if b.window.Len() > 0 {
				return heap.Pop(&b.window).(headEvent).e, nil
			}
			return nil, b.err
		}
		line, err := b.lr.next()
		if err == nil {
			err = b.handle(string(line))
		}
		b.err = err
	}
}

func (b *BpftraceReader) flush() {
	if b.held != nil {
		heap.Push(&b.window, headEvent{e: b.held, src: b.seq})
		b.seq++
		b.held = nil
	}
}

func (b *BpftraceReader) str(v string) string { return b.intern.str(v) }

// other counts a line that is not an event: bpftrace's lost events, or
// the program's own output.
func (b *BpftraceReader) other(line string, lineNo int) {
	if strings.HasPrefix(line, "Lost ") || strings.Contains(line, " events lost") {
		for _, f := range strings.Fields(line) {
			if n, err := strconv.Atoi(f); err == nil {
				b.Lost += n
				break
			}
		}
		return
	}
	b.Foreign++
	if b.FirstForeign == 0 {
		b.FirstForeign = lineNo
	}
}

func (b *BpftraceReader) handle(line string) error {
	lineNo := b.lr.line
	switch {
	case strings.HasPrefix(line, "\t"):
		if b.held != nil {
			b.held.Frames = append(b.held.Frames, b.parseFrame(strings.TrimSpace(line)))
		}
		return nil
	case strings.TrimSpace(line) == "":
		return nil
	case strings.HasPrefix(line, "memdiag call="):
	default:
		b.other(line, lineNo)
		return nil
	}
	b.flush()
	e := &Event{Line: lineNo, FD: -1, HasTime: true}
	kv := map[string]string{}
	for _, f := range strings.Fields(line)[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return b.malformed(lineNo, "expected key=value, got "+strconv.Quote(f), line)
		}
		kv[k] = v
	}
	e.Name = b.str(kv["call"])
	e.Call = lookupCall(e.Name)
	if e.Name == "exit" {
		e.Call = CallExit
		e.ExitStatus = "exited"
	}
	f := &bpfFields{kv: kv}
	num, snum := f.num, f.snum
	e.PID, e.TID = int(snum("pid")), int(snum("tid"))
	enter, exit := num("enter"), num("exit")
	e.Time, e.EnterKey, e.DoneKey = float64(enter)/1e9, float64(enter)/1e9, float64(exit)/1e9
	switch e.Call {
	case CallMmap:
		e.Addr, e.Len, e.Offset = num("addr"), num("len"), num("off")
		e.FD = snum("fd")
		e.Prot = b.str(ProtText(num("prot")))
		e.Flags, e.FlagsText = MmapFlags(num("flags"))
		e.FlagsText = b.str(e.FlagsText)
	case CallMunmap:
		e.Addr, e.Len = num("addr"), num("len")
	case CallMremap:
		e.Addr, e.Len, e.NewLen, e.NewAddr = num("addr"), num("len"), num("new_len"), num("new_addr")
		e.Flags, e.FlagsText = MremapFlags(num("flags"))
	case CallMadvise:
		e.Addr, e.Len = num("addr"), num("len")
		e.Advice = adviceName(num("advice"))
	case CallBrk:
		e.Addr = num("addr")
	case CallExit:
	default:
		return b.malformed(lineNo, "unknown call "+strconv.Quote(e.Name), line)
	}
	if e.Call != CallExit {
		ret := snum("ret")
		if ret < 0 && ret > -4096 {
			e.Failed, e.Errno = true, fmt.Sprintf("errno %d", -ret)
		} else {
			e.Ret = uint64(ret)
		}
	}
	if f.err != nil {
		return b.malformed(lineNo, f.err.Error(), line)
	}
	b.held = e
	return nil
}

// bpfFields reads the numbers of one line's key=value fields; err keeps the
// first field that was missing or not a number.
type bpfFields struct {
	kv  map[string]string
	err error
}

// num reads an unsigned field, which must be present.
func (f *bpfFields) num(k string) uint64 {
	v, ok := f.kv[k]
	if !ok || f.err != nil {
		if !ok && f.err == nil {
			f.err = fmt.Errorf("%s= missing", k)
		}
		return 0
	}
	n, perr := parseNum(v)
	if perr != nil {
		f.err = fmt.Errorf("%s=%q is not a number", k, v)
	}
	return n
}

// snum reads a signed decimal field.
func (f *bpfFields) snum(k string) int64 {
	v := f.kv[k]
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil && f.err == nil {
		f.err = fmt.Errorf("%s=%q is not a number", k, v)
	}
	return n
}

// parseFrame reads "7f38913299b3 __mmap64+19 (/usr/lib/…/libc.so.6)".
func (b *BpftraceReader) parseFrame(s string) Frame {
	var f Frame
	addr, rest, _ := strings.Cut(s, " ")
	f.Addr, _ = strconv.ParseUint(addr, 16, 64)
	if i := strings.LastIndex(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
		f.Module = rest[i+2 : len(rest)-1]
		if f.Module == "[unknown]" {
			f.Module = ""
		}
		rest = rest[:i]
	}
	if j := strings.LastIndexByte(rest, '+'); j > 0 {
		rest = rest[:j]
	}
	if !strings.HasPrefix(rest, "0x") {
		f.Func = rest
	}
	f.Func, f.Module = b.str(f.Func), b.str(f.Module)
	return f
}

func (b *BpftraceReader) malformed(line int, msg, text string) error {
	if len(text) > 120 {
		text = text[:120] + "…"
	}
	return &ParseError{Name: b.lr.name, Line: line, Msg: fmt.Sprintf("%s: %q", msg, text), Err: ErrMalformed}
}

// ProtText names a Linux protection number as trace's readers print it
// ("READ|WRITE", "NONE").
func ProtText(p uint64) string {
	if p == 0 {
		return "NONE"
	}
	var parts []string
	for _, x := range []struct {
		bit  uint64
		name string
	}{{1, "READ"}, {2, "WRITE"}, {4, "EXEC"}} {
		if p&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	return strings.Join(parts, "|")
}

func adviceName(a uint64) string {
	switch a {
	case 4:
		return "DONTNEED"
	case 8:
		return "FREE"
	case 9:
		return "REMOVE"
	}
	return strconv.FormatUint(a, 10)
}
