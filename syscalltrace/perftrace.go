package syscalltrace

import (
	"container/heap"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// PerfTraceReader reads `perf trace` output, with or without --call-graph:
//
//	0.695 ( 0.013 ms): comm/TID mmap(len: 1048576, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS) = 0x7fdff5864000
//
// Arguments at their default (zero) are omitted; a call split by another
// task's output ends with "..." and is finished by a later
// "comm/TID  ... [continued]: munmap()) = 0" line. --call-graph adds
// indented "sym (dso)" frames after the call.
type PerfTraceReader struct {
	lr      *lineReader
	pending map[int]*Event // split calls by task
	held    *Event
	out     []*Event
	err     error // io.EOF or the first error, returned once out and the window are drained
	// perf writes each CPU's buffer in turn, so times step backwards at
	// buffer boundaries; a bounded window puts events back in time order.
	window eventHeap
	seq    int
	// Lost is the number of events perf reported lost ("LOST N events!"):
	// calls the replay never saw.
	Lost   int
	lastMS float64
	// Foreign counts lines that are not perf trace's.
	Foreign      int
	FirstForeign int
}

// NewPerfTraceReader reads perf trace output from r.
func NewPerfTraceReader(r io.Reader, name string) *PerfTraceReader {
	return &PerfTraceReader{lr: newLineReader(r, name), pending: map[int]*Event{}}
}

// reorderWindow is how many events are held to restore time order.
const reorderWindow = 8192

// Next returns the next memory-relevant event in time order, or io.EOF.
func (p *PerfTraceReader) Next() (*Event, error) {
	for {
		for len(p.out) > 0 {
			e := p.out[0]
			p.out = p.out[1:]
			heap.Push(&p.window, headEvent{e: e, src: p.seq})
			p.seq++
		}
		if p.window.Len() > reorderWindow {
			return heap.Pop(&p.window).(headEvent).e, nil
		}
		if p.err != nil {
			// The end, or a bad line: what was read before it is
			// delivered first.
			if p.held != nil {
				p.out = append(p.out, p.held)
				p.held = nil
				continue
			}
			if p.window.Len() > 0 {
				return heap.Pop(&p.window).(headEvent).e, nil
			}
			return nil, p.err
		}
		line, err := p.lr.next()
		if err == nil {
			err = p.handle(string(line))
		}
		p.err = err
	}
}

func (p *PerfTraceReader) emit(e *Event) {
	if p.held != nil {
		p.out = append(p.out, p.held)
	}
	p.held = e
}

// handle decodes one line of perf trace output.
func (p *PerfTraceReader) handle(line string) error {
	lineNo := p.lr.line
	trimmed := strings.TrimSpace(line)
	if trimmed == "" {
		return nil
	}
	if n, ok := strings.CutPrefix(trimmed, "LOST "); ok {
		if k, _, ok := strings.Cut(n, " "); ok {
			v, _ := strconv.Atoi(k)
			p.Lost += v
		}
		return nil
	}
	// "   time ( dur ms): comm/TID call(args) = ret"
	paren := strings.Index(line, " (")
	colon := strings.Index(line, "): ")
	if paren < 0 || colon < paren {
		// A --call-graph frame: "sym (dso)" or "sym (inlined)", deeply indented.
		if strings.HasPrefix(line, "        ") && p.held != nil {
			p.held.Frames = append(p.held.Frames, parsePerfFrame(trimmed))
			return nil
		}
		p.Foreign++
		if p.FirstForeign == 0 {
			p.FirstForeign = lineNo
		}
		return nil
	}
	ts, dur, err := p.times(line, paren, colon, lineNo)
	if err != nil {
		return err
	}
	rest := line[colon+3:]
	open := strings.IndexByte(rest, '(')
	cont := strings.Index(rest, " ... [continued]: ")
	comm, tid, err := p.task(rest, open, cont, line, lineNo)
	if err != nil {
		return err
	}
	if cont >= 0 {
		return p.continued(rest[cont+len(" ... [continued]: "):], tid, dur, line, lineNo)
	}
	return p.call(rest, open, comm, tid, ts, dur, line, lineNo)
}

// times reads a line's "time ( dur ms)": the call's start, in
// milliseconds, and its duration in seconds (0 while it is split).
func (p *PerfTraceReader) times(line string, paren, colon, lineNo int) (ts, dur float64, err error) {
	stamp := strings.TrimSpace(line[:paren])
	ts, perr := strconv.ParseFloat(stamp, 64)
	switch {
	case stamp == "?":
		ts = p.lastMS // perf lost the start of this call: "? ( ): … [continued]"
	case perr != nil:
		return 0, 0, p.malformed(lineNo, "expected a timestamp before \" (\"", line)
	}
	p.lastMS = ts
	if d, ok := strings.CutSuffix(strings.TrimSpace(line[paren+2:colon]), " ms"); ok {
		if v, err := strconv.ParseFloat(strings.TrimSpace(d), 64); err == nil {
			dur = v / 1000
		}
	}
	return ts, dur, nil
}

// task reads "comm/TID" before the call (open) or before "... [continued]"
// (cont): comm may hold spaces and slashes; the task id is the digits after
// the last '/'.
func (p *PerfTraceReader) task(rest string, open, cont int, line string, lineNo int) (comm string, tid int, err error) {
	head := rest
	if cont >= 0 {
		head = rest[:cont]
	} else if open >= 0 {
		head = rest[:open]
		if sp := strings.LastIndexByte(head, ' '); sp >= 0 {
			head = head[:sp]
		}
	}
	head = strings.TrimSpace(head)
	slash := strings.LastIndexByte(head, '/')
	if slash < 0 {
		return "", 0, p.malformed(lineNo, "expected comm/TID", line)
	}
	tid, err = strconv.Atoi(head[slash+1:])
	if err != nil {
		return "", 0, p.malformed(lineNo, "expected comm/TID", line)
	}
	return head[:slash], tid, nil
}

// continued ends a call split by perf: "... [continued]: munmap()) = 0".
func (p *PerfTraceReader) continued(tail string, tid int, dur float64, line string, lineNo int) error {
	e := p.pending[tid]
	delete(p.pending, tid)
	if e == nil || !strings.HasPrefix(tail, e.Name+"(") {
		// Its start came before the trace, or was lost: drop it, and the
		// frames after it with it.
		if p.held != nil {
			p.out = append(p.out, p.held)
			p.held = nil
		}
		return nil
	}
	e.DoneKey = e.EnterKey + dur
	if i := strings.LastIndex(tail, " = "); i >= 0 {
		if err := decodeResult(e, strings.TrimSpace(tail[i+3:])); err != nil {
			return p.malformed(lineNo, err.Error(), line)
		}
	}
	p.emit(e)
	return nil
}

// call decodes "name(args) = ret" or "name(args ...", the start of a call
// perf split; ts is in milliseconds.
func (p *PerfTraceReader) call(rest string, open int, comm string, tid int, ts, dur float64, line string, lineNo int) error {
	if open < 0 {
		return p.malformed(lineNo, "expected a call after comm/TID", line)
	}
	before := rest[:open]
	name := before[strings.LastIndexByte(before, ' ')+1:]
	if !isIdent(name) {
		return p.malformed(lineNo, "expected a call after comm/TID", line)
	}
	closeAt := matchingParen(rest[open+1:])
	if closeAt < 0 {
		return p.malformed(lineNo, "unbalanced parentheses", line)
	}
	call := lookupCall(name)
	// perf trace prints times in milliseconds; keys and Time are seconds.
	ts /= 1000
	e := &Event{Line: lineNo, TID: tid, Comm: comm, Time: ts, HasTime: true, Call: call, Name: name, FD: -1,
		EnterKey: ts, DoneKey: ts + dur}
	if call != CallOther {
		if err := decodePerfArgs(e, rest[open+1:open+1+closeAt]); err != nil {
			return p.malformed(lineNo, fmt.Sprintf("%s: %v", name, err), line)
		}
	}
	after := strings.TrimSpace(rest[open+1+closeAt+1:])
	switch {
	case after == "...":
		if call != CallOther {
			p.pending[tid] = e
		}
		return nil
	case strings.HasPrefix(after, "="):
		if err := decodeResult(e, strings.TrimSpace(after[1:])); err != nil {
			return p.malformed(lineNo, err.Error(), line)
		}
	default:
		return p.malformed(lineNo, "expected \" = result\" or \"...\"", line)
	}
	if call == CallOther {
		// Frames of a skipped call must not attach to the previous event.
		if p.held != nil {
			p.out = append(p.out, p.held)
		}
		p.held = nil
		return nil
	}
	p.emit(e)
	return nil
}

func (p *PerfTraceReader) malformed(line int, msg, text string) error {
	if len(text) > 120 {
		text = text[:120] + "…"
	}
	return &ParseError{Name: p.lr.name, Line: line, Msg: fmt.Sprintf("%s: %q", msg, text), Err: ErrMalformed}
}

// decodePerfArgs reads "name: value, name: value"; omitted ones are zero.
func decodePerfArgs(e *Event, s string) error {
	for _, kv := range splitArgs(s) {
		k, v, ok := strings.Cut(kv, ": ")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "addr", "start":
			e.Addr, err = parseNum(v)
		case "len", "len_in", "old_len":
			e.Len, err = parseNum(v)
		case "new_len":
			e.NewLen, err = parseNum(v)
		case "new_addr":
			e.NewAddr, err = parseNum(v)
		case "off", "pgoff":
			e.Offset, err = parseNum(v)
		case "fd":
			e.FD = parseFD(v)
		case "prot":
			e.Prot = v
		case "flags":
			e.Flags, e.FlagsText = parseFlags(v)
		case "behavior", "advice":
			e.Advice = strings.TrimPrefix(v, "MADV_")
		case "brk":
			e.Addr, err = parseNum(v)
		}
		if err != nil {
			return fmt.Errorf("%s: %q is not a number", k, v)
		}
	}
	if e.Call == CallMmap && e.Flags&FlagAnonymous == 0 && e.FD == -1 {
		e.FD = 0 // an omitted fd is 0, not "none"
	}
	return nil
}

// parsePerfFrame reads "sym (dso)" or "sym (inlined)".
func parsePerfFrame(s string) Frame {
	if strings.HasSuffix(s, ")") {
		if i := strings.LastIndex(s, " ("); i >= 0 {
			mod := s[i+2 : len(s)-1]
			if mod == "inlined" {
				mod = ""
			}
			return Frame{Func: s[:i], Module: mod}
		}
	}
	return Frame{Func: s}
}
