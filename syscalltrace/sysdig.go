package syscalltrace

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SysdigReader reads sysdig's text output — the default format
// "%evt.num %evt.time %evt.cpu %proc.name (%thread.tid) %evt.dir %evt.type %evt.info"
// and the %evt.info-based forms people use — and `sysdig -j` JSON lines.
// Exit events ("<") carry the result and, in current sysdig, the arguments;
// older versions put the arguments on the enter event (">"), which is kept
// per thread and merged. sysdig has no mremap or madvise events.
type SysdigReader struct {
	lr      *lineReader
	json    bool
	enter   map[int]map[string]string
	window  eventHeap
	seq     int
	err     error // io.EOF or the first error, returned once the window is drained
	Foreign int
	// FirstForeign is the line of the first line not read as an event.
	FirstForeign int
	intern       interner
}

// NewSysdigReader reads sysdig text output; NewSysdigJSONReader reads -j.
func NewSysdigReader(r io.Reader, name string) *SysdigReader {
	return &SysdigReader{lr: newLineReader(r, name), enter: map[int]map[string]string{}, intern: interner{}}
}

// NewSysdigJSONReader reads `sysdig -j` output: one JSON object per line.
func NewSysdigJSONReader(r io.Reader, name string) *SysdigReader {
	s := NewSysdigReader(r, name)
	s.json = true
	return s
}

// Next returns the next event in time order, or io.EOF.
func (s *SysdigReader) Next() (*Event, error) {
	for {
		if s.window.Len() > reorderWindow {
			return heap.Pop(&s.window).(headEvent).e, nil
		}
		if s.err != nil {
			// The end, or a bad line: what was read before it is
			// delivered first.
			if s.window.Len() > 0 {
				return heap.Pop(&s.window).(headEvent).e, nil
			}
			return nil, s.err
		}
		s.err = s.readEvent()
	}
}

// readEvent reads one line into the window.
func (s *SysdigReader) readEvent() error {
	line, err := s.lr.next()
	if err != nil {
		return err
	}
	var f sysdigFields
	var ok bool
	if s.json {
		f, ok, err = s.parseJSON(line)
	} else {
		f, ok = parseSysdigText(string(line))
	}
	if err != nil {
		return err
	}
	if !ok {
		s.Foreign++
		if s.FirstForeign == 0 {
			s.FirstForeign = s.lr.line
		}
		return nil
	}
	e, err := s.event(f)
	if err != nil {
		return err
	}
	if e != nil {
		heap.Push(&s.window, headEvent{e: e, src: s.seq})
		s.seq++
	}
	return nil
}

type sysdigFields struct {
	time    float64
	hasTime bool
	tid     int
	comm    string
	dir     byte // '<' exit, '>' enter
	typ     string
	info    string
}

// parseSysdigText finds "… (TID) DIR TYPE INFO" in a line; what comes
// before is the event number, time, CPU and process name.
func parseSysdigText(line string) (sysdigFields, bool) {
	var f sysdigFields
	for _, sep := range []string{") < ", ") > "} {
		i := strings.Index(line, sep)
		if i < 0 {
			continue
		}
		open := strings.LastIndexByte(line[:i], '(')
		if open < 0 {
			continue
		}
		tid, err := strconv.Atoi(line[open+1 : i])
		if err != nil {
			continue
		}
		f.tid, f.dir = tid, sep[2]
		rest := line[i+len(sep):]
		f.typ, f.info, _ = strings.Cut(rest, " ")
		head := strings.Fields(line[:open])
		// head: [evt.num] [evt.time] [evt.cpu] proc.name…
		for j, h := range head {
			if !f.hasTime {
				if v, ok := parseStraceTime(h); ok && strings.ContainsAny(h, ".:") {
					f.time, f.hasTime = v, true
					continue
				}
			}
			if j >= 2 || !isDigits(h) {
				f.comm = strings.Join(head[j:], " ")
				break
			}
		}
		return f, true
	}
	return f, false
}

func (s *SysdigReader) parseJSON(line []byte) (sysdigFields, bool, error) {
	var f sysdigFields
	t := strings.TrimSpace(string(line))
	if !strings.HasPrefix(t, "{") {
		return f, false, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(t), &m); err != nil {
		return f, false, &ParseError{Name: s.lr.name, Line: s.lr.line, Msg: "sysdig -j line is not JSON: " + err.Error(), Err: ErrMalformed}
	}
	str := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	tid, err := strconv.Atoi(str("thread.tid"))
	if err != nil {
		return f, false, nil
	}
	f.tid, f.comm, f.typ, f.info = tid, str("proc.name"), str("evt.type"), str("evt.info")
	if d := str("evt.dir"); d != "" {
		f.dir = d[0]
	}
	if v, ok := m["evt.outputtime"].(float64); ok {
		f.time, f.hasTime = v/1e9, true
	} else if v, ok := parseStraceTime(str("evt.time")); ok {
		f.time, f.hasTime = v, true
	}
	return f, true, nil
}

// enterTimeKey holds an enter event's time among its arguments.
const enterTimeKey = "\x00time"

// info splits "res=0 addr=7F3B10677000 prot=3(PROT_READ|PROT_WRITE)".
func splitInfo(info string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(info) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// joinEnter adds to kv, the exit event's fields, what the task's enter
// event said that the exit does not, and returns when the call entered
// (the exit's own time when its enter event is not known).
func (s *SysdigReader) joinEnter(f sysdigFields, kv map[string]string) float64 {
	entered := f.time
	for k, v := range s.enter[f.tid] {
		if k == enterTimeKey {
			entered, _ = strconv.ParseFloat(v, 64)
			continue
		}
		if _, ok := kv[k]; !ok {
			kv[k] = v
		}
	}
	delete(s.enter, f.tid)
	return entered
}

func (s *SysdigReader) event(f sysdigFields) (*Event, error) {
	call := lookupCall(f.typ)
	if call == CallOther && f.typ != "procexit" {
		return nil, nil
	}
	kv := splitInfo(f.info)
	if f.dir == '>' {
		kv[enterTimeKey] = strconv.FormatFloat(f.time, 'f', -1, 64)
		s.enter[f.tid] = kv
		return nil, nil
	}
	entered := s.joinEnter(f, kv)
	// The exit event is stamped at the return; with its enter event the
	// call's whole time in the kernel is known.
	e := &Event{Line: s.lr.line, TID: f.tid, Comm: s.str(f.comm), Time: entered, HasTime: f.hasTime, Call: call, Name: s.str(f.typ), FD: -1,
		EnterKey: entered, DoneKey: f.time}
	if f.typ == "procexit" {
		e.Call, e.Name, e.ExitStatus = CallExit, "exit", "exited"
		return e, nil
	}
	res := kv["res"]
	if strings.HasPrefix(res, "-") {
		e.Failed = true
		if i := strings.IndexByte(res, '('); i > 0 {
			e.Errno = s.str(strings.TrimSuffix(res[i+1:], ")"))
		}
	}
	a := &sysdigArgs{kv: kv}
	hex, dec, symbolic := a.hex, a.dec, a.symbolic
	switch call {
	case CallMmap:
		e.Addr, e.Len, e.Offset = hex("addr"), dec("length"), dec("offset")
		e.Prot = s.str(strings.ReplaceAll(symbolic("prot"), "PROT_", ""))
		e.Flags, e.FlagsText = parseFlags(symbolic("flags"))
		e.FlagsText = s.str(e.FlagsText)
		if fd, perr := strconv.ParseInt(kv["fd"], 10, 64); perr == nil {
			e.FD = fd
		}
		if !e.Failed {
			e.Ret = mmapResult(res)
		}
	case CallMunmap:
		e.Addr, e.Len = hex("addr"), dec("length")
	case CallMprotect:
		e.Addr, e.Len = hex("addr"), dec("length")
		e.Prot = s.str(strings.ReplaceAll(symbolic("prot"), "PROT_", ""))
	case CallBrk:
		e.Addr = hex("addr")
		if !e.Failed {
			e.Ret = hex("res")
		}
	case CallClone:
		if !e.Failed {
			e.Ret = dec("res")
		}
		e.Flags, e.FlagsText = parseFlags(symbolic("flags"))
	}
	if a.err != nil {
		return nil, &ParseError{Name: s.lr.name, Line: s.lr.line, Msg: fmt.Sprintf("%s: %v", f.typ, a.err), Err: ErrMalformed}
	}
	return e, nil
}

// sysdigArgs reads the arguments of one exit event; err keeps the first that
// was not a number, and after it every number reads as 0.
type sysdigArgs struct {
	kv  map[string]string
	err error
}

// hex reads a hexadecimal address argument; absent reads as 0.
func (a *sysdigArgs) hex(k string) uint64 {
	v, ok := a.kv[k]
	if !ok || a.err != nil {
		return 0
	}
	n, perr := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v), "0x"), 16, 64)
	if perr != nil {
		a.err = fmt.Errorf("%s=%q is not a hexadecimal address", k, v)
	}
	return n
}

// dec reads a decimal argument, dropping sysdig's "(symbolic)" suffix.
func (a *sysdigArgs) dec(k string) uint64 {
	v, ok := a.kv[k]
	if !ok || a.err != nil {
		return 0
	}
	if i := strings.IndexByte(v, '('); i >= 0 {
		v = v[:i]
	}
	n, perr := strconv.ParseUint(v, 10, 64)
	if perr != nil {
		a.err = fmt.Errorf("%s=%q is not a number", k, v)
	}
	return n
}

// symbolic reads the "(PROT_READ|PROT_WRITE)" part of an argument, or the
// whole argument when it has none.
func (a *sysdigArgs) symbolic(k string) string {
	v := a.kv[k]
	if i := strings.IndexByte(v, '('); i >= 0 && strings.HasSuffix(v, ")") {
		return v[i+1 : len(v)-1]
	}
	return v
}

// mmapResult reads mmap's res: decimal in current sysdig, hexadecimal in
// older versions. Mapped addresses are page-aligned, which tells them apart.
func mmapResult(res string) uint64 {
	if d, err := strconv.ParseUint(res, 10, 64); err == nil && d%pageSize == 0 {
		return d
	}
	h, _ := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(res), "0x"), 16, 64)
	return h
}

func (s *SysdigReader) str(v string) string { return s.intern.str(v) }
