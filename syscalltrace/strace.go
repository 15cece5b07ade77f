package syscalltrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unsafe"
)

// maxLine bounds one trace line; strace abbreviates long arguments, so a
// longer line is not strace's.
const maxLine = 1 << 20

// lineReader yields lines without their newline, counting them.
type lineReader struct {
	r    *bufio.Reader
	name string
	line int
	long []byte
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10), name: name}
}

// next returns the next line (valid until the following call) or io.EOF.
func (lr *lineReader) next() ([]byte, error) {
	line, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.r.ReadSlice('\n')
			lr.long = append(lr.long, line...)
			if len(lr.long) > maxLine {
				return nil, &ParseError{Name: lr.name, Line: lr.line + 1, Msg: fmt.Sprintf("line longer than %d KiB", maxLine>>10), Err: ErrMalformed}
			}
		}
		line = lr.long
	}
	if err != nil && err != io.EOF {
		return nil, &ParseError{Name: lr.name, Line: lr.line + 1, Msg: "read failed: " + err.Error(), Err: err}
	}
	if len(line) == 0 {
		return nil, io.EOF
	}
	lr.line++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}

// StraceReader reads strace output: -f with -o (“PID  call…”) or on stderr
// (“[pid N] call…”), one -ff file, with or without -t/-tt/-ttt/-r and -T,
// -k stack frames, split calls (<unfinished ...> / <... resumed>), and
// "Process N attached" noise anywhere in a line.
type StraceReader struct {
	lr *lineReader
	// defaultTID is the task of lines without a pid prefix: the -ff file's
	// pid, or 0 for the traced process itself in stderr output.
	defaultTID int
	pending    map[int]pendingCall
	partial    []byte // a line cut by attach noise, waiting for its end
	partialAt  int
	held       *Event // the last event, held until its -k frames are read
	out        []*Event
	err        error // io.EOF or the first error, returned once out is drained

	// Foreign counts lines that are not strace's (the traced program's own
	// stderr); FirstForeign is the first one's line number.
	Foreign      int
	FirstForeign int

	// On stderr, strace writes the traced process's lines without a pid
	// until a second task exists, then prefixes them all. Those early
	// events wait in early until the first "[pid N]" of a task that was
	// never announced as attached names the process; attached holds the
	// announced ones.
	early      []*Event
	originDone bool
	attached   map[int]bool

	intern    interner
	protCache map[string]string
	flagCache map[string]flagsValue
	argv      [16]string
}

// maxEarly bounds the events held while the traced process's pid is unknown.
const maxEarly = 10000

type pendingCall struct {
	name    string
	args    string
	line    int
	time    float64
	hasTime bool
}

// NewStraceReader reads strace output from r. defaultTID is the task of
// lines without a pid prefix (the pid of a -ff file; 0 when unknown).
func NewStraceReader(r io.Reader, name string, defaultTID int) *StraceReader {
	return &StraceReader{lr: newLineReader(r, name), defaultTID: defaultTID, pending: map[int]pendingCall{},
		intern: interner{}, protCache: map[string]string{}, flagCache: map[string]flagsValue{}}
}

// Next returns the next memory-relevant event, or io.EOF.
func (s *StraceReader) Next() (*Event, error) {
	for len(s.out) == 0 {
		if s.err != nil {
			return nil, s.err
		}
		line, err := s.lr.next()
		if err == nil {
			err = s.handle(line)
		}
		if err != nil {
			// The events read before the end or the bad line are still
			// delivered, then the end or the error, for good.
			s.err = err
			if s.held != nil {
				s.queue(s.held)
				s.held = nil
			}
			if len(s.early) > 0 {
				s.setOrigin(s.defaultTID)
			}
		}
	}
	e := s.out[0]
	s.out = s.out[1:]
	return e, nil
}

var (
	attachedNoise = []byte("strace: Process ")
	unfinished    = " <unfinished ...>"
)

func (s *StraceReader) emit(e *Event) {
	if s.held != nil {
		s.queue(s.held)
	}
	s.held = e
}

func (s *StraceReader) queue(e *Event) {
	if !s.originDone && s.defaultTID == 0 && e.TID == 0 {
		s.early = append(s.early, e)
		if len(s.early) >= maxEarly {
			s.setOrigin(0)
		}
		return
	}
	s.out = append(s.out, e)
}

// setOrigin gives the held early events the traced process's pid.
func (s *StraceReader) setOrigin(pid int) {
	s.originDone = true
	s.defaultTID = pid
	for _, e := range s.early {
		e.TID = pid
	}
	s.out = append(s.out, s.early...)
	s.early = nil
}

func (s *StraceReader) handle(raw []byte) error {
	lineNo := s.lr.line
	// Frames of -k follow their call.
	if t := bytes.TrimLeft(raw, " "); bytes.HasPrefix(t, []byte("> ")) {
		if s.held != nil {
			f := parseStraceFrame(unsafe.String(unsafe.SliceData(t[2:]), len(t)-2))
			f.Func, f.Module = s.str(f.Func), s.str(f.Module)
			s.held.Frames = append(s.held.Frames, f)
		}
		return nil
	}
	// A view of the read buffer, valid until the next line is read: what
	// outlives the line is copied (interned) where it is kept.
	line := unsafe.String(unsafe.SliceData(raw), len(raw))
	// "strace: Process N attached" may land in the middle of another line,
	// which then continues on the next line: cut the noise out and rejoin.
	interrupted := false
	for {
		i := strings.Index(line, string(attachedNoise))
		if i < 0 {
			break
		}
		rest := line[i+len(attachedNoise):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		word := rest[j:]
		if !strings.HasPrefix(word, " attached") && !strings.HasPrefix(word, " detached") {
			break
		}
		if n, err := strconv.Atoi(rest[:j]); err == nil {
			if s.attached == nil {
				s.attached = map[int]bool{}
			}
			s.attached[n] = true
		}
		line = line[:i] + word[len(" attached"):]
		interrupted = interrupted || i > 0
	}
	if s.partial != nil {
		line = string(s.partial) + line
		lineNo = s.partialAt
		s.partial = nil
	}
	if interrupted {
		s.partial, s.partialAt = []byte(line), lineNo
		return nil
	}
	if strings.TrimSpace(line) == "" {
		return nil
	}

	tid := s.defaultTID
	rest := strings.TrimLeft(line, " ")
	// "[pid  N] " (stderr) or "N  " (-o with -f).
	if strings.HasPrefix(rest, "[pid ") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return s.malformed(lineNo, "unclosed [pid", line)
		}
		n, err := strconv.Atoi(strings.TrimSpace(rest[5:end]))
		if err != nil {
			return s.malformed(lineNo, "bad pid", line)
		}
		tid, rest = n, strings.TrimLeft(rest[end+1:], " ")
		if !s.originDone && s.defaultTID == 0 && !s.attached[n] {
			if s.held != nil && s.held.TID == 0 {
				s.queue(s.held)
				s.held = nil
			}
			s.setOrigin(n)
		}
	} else if i := strings.IndexByte(rest, ' '); i > 0 && isDigits(rest[:i]) {
		n, _ := strconv.Atoi(rest[:i])
		tid, rest = n, strings.TrimLeft(rest[i:], " ")
	}
	// Timestamps: -t 12:34:56, -tt 12:34:56.123456, -ttt 1700000000.123456,
	// -r 0.000123 (relative).
	var ts float64
	hasTime := false
	if i := strings.IndexByte(rest, ' '); i > 0 {
		if v, ok := parseStraceTime(rest[:i]); ok {
			ts, hasTime, rest = v, true, strings.TrimLeft(rest[i:], " ")
		}
	}

	switch {
	case strings.HasPrefix(rest, "+++ "):
		e := &Event{Line: lineNo, TID: tid, Time: ts, HasTime: hasTime, Call: CallExit, Name: "exit",
			EnterKey: float64(lineNo), DoneKey: float64(lineNo),
			ExitStatus: s.str(strings.TrimSuffix(strings.TrimPrefix(rest, "+++ "), " +++"))}
		s.emit(e)
		return nil
	case strings.HasPrefix(rest, "--- "), strings.HasPrefix(rest, "strace: "), strings.HasPrefix(rest, "???"):
		return nil // signals, strace's own messages
	case strings.HasPrefix(rest, "<... "):
		end := strings.Index(rest, " resumed>")
		if end < len("<... ") {
			return s.malformed(lineNo, "expected \"<... NAME resumed>\"", line)
		}
		name := rest[len("<... "):end]
		p, ok := s.pending[tid]
		delete(s.pending, tid)
		if !ok || p.name != name {
			// The start was before the trace began (or in another file):
			// nothing to rejoin.
			return nil
		}
		tail := strings.TrimLeft(rest[end+len(" resumed>"):], " ")
		return s.complete(p.line, tid, p.time, p.hasTime, name, p.args+tail, line)
	}
	open := strings.IndexByte(rest, '(')
	if open <= 0 || !isIdent(rest[:open]) {
		// strace on stderr shares it with the program: its own lines are
		// counted and skipped, not taken for calls.
		s.Foreign++
		if s.FirstForeign == 0 {
			s.FirstForeign = lineNo
		}
		return nil
	}
	name := rest[:open]
	if strings.HasSuffix(rest, unfinished) {
		args := ""
		if lookupCall(name) != CallOther {
			args = strings.Clone(strings.TrimSuffix(rest[open+1:], unfinished))
		}
		s.pending[tid] = pendingCall{name: s.str(name), args: args, line: lineNo, time: ts, hasTime: hasTime}
		return nil
	}
	return s.complete(lineNo, tid, ts, hasTime, name, rest[open+1:], line)
}

// complete decodes "args) = result [<dur>]" of a whole call.
func (s *StraceReader) complete(lineNo, tid int, ts float64, hasTime bool, name, argsAndResult, whole string) error {
	call := lookupCall(name)
	if call == CallOther {
		return nil
	}
	args, closeAt := scanArgs(argsAndResult, s.argv[:0], true)
	if closeAt < 0 {
		return s.malformed(lineNo, "unbalanced parentheses in the arguments", whole)
	}
	result := strings.TrimSpace(argsAndResult[closeAt+1:])
	if !strings.HasPrefix(result, "=") {
		return s.malformed(lineNo, "expected \" = result\" after the arguments", whole)
	}
	result = strings.TrimSpace(result[1:])
	var dur float64
	if i := strings.LastIndex(result, " <"); i >= 0 && strings.HasSuffix(result, ">") {
		dur, _ = parseDecimal(result[i+2 : len(result)-1]) // -T
		result = result[:i]
	}
	e := &Event{Line: lineNo, TID: tid, Time: ts, HasTime: hasTime, Call: call, Name: s.str(name), FD: -1,
		EnterKey: float64(lineNo), DoneKey: float64(s.lr.line), Duration: dur}
	if err := decodeResult(e, result); err != nil {
		return s.malformed(lineNo, err.Error(), whole)
	}
	e.Errno = s.str(e.Errno)
	if err := s.decodeStraceArgs(e, args); err != nil {
		return s.malformed(lineNo, fmt.Sprintf("%s: %v", name, err), whole)
	}
	s.emit(e)
	return nil
}

// maxIntern bounds the interned strings; past it, copies are not shared.
const maxIntern = 1 << 16

// interner keeps one copy of each string that repeats across a trace:
// call names, flags, errnos and stack frames repeat millions of times.
type interner map[string]string

// str returns a kept copy of v (which may view a read buffer), shared with
// every equal string seen before.
func (in interner) str(v string) string {
	if v == "" {
		return ""
	}
	if c, ok := in[v]; ok {
		return c
	}
	c := strings.Clone(v)
	if len(in) < maxIntern {
		in[c] = c
	}
	return c
}

func (s *StraceReader) str(v string) string { return s.intern.str(v) }

func (s *StraceReader) prot(v string) string {
	if c, ok := s.protCache[v]; ok {
		return c
	}
	c := strings.ReplaceAll(v, "PROT_", "")
	if len(s.protCache) < maxIntern {
		s.protCache[strings.Clone(v)] = c
	}
	return c
}

type flagsValue struct {
	bits uint32
	text string
}

func (s *StraceReader) flags(v string) (uint32, string) {
	if c, ok := s.flagCache[v]; ok {
		return c.bits, c.text
	}
	bits, text := parseFlags(v)
	if len(s.flagCache) < maxIntern {
		s.flagCache[strings.Clone(v)] = flagsValue{bits, text}
	}
	return bits, text
}

func (s *StraceReader) malformed(line int, msg, text string) error {
	if len(text) > 120 {
		text = text[:120] + "…"
	}
	return &ParseError{Name: s.lr.name, Line: line, Msg: fmt.Sprintf("%s: %q", msg, text), Err: ErrMalformed}
}

// decodeResult reads "0x7f…", "0", "-1 ENOMEM (Cannot allocate memory)", "?".
func decodeResult(e *Event, r string) error {
	if r == "?" || r == "" {
		return nil // exit_group and the like
	}
	first, rest, _ := strings.Cut(r, " ")
	if strings.HasPrefix(first, "-") {
		e.Failed = true
		e.Errno, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
		return nil
	}
	v, err := parseNum(first)
	if err != nil {
		return fmt.Errorf("result %q is not a number", first)
	}
	e.Ret = v
	return nil
}

func (s *StraceReader) decodeStraceArgs(e *Event, args []string) error {
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	num := func(i int) (uint64, error) {
		if i >= len(args) {
			return 0, fmt.Errorf("expected at least %d arguments, got %d", i+1, len(args))
		}
		return parseNum(args[i])
	}
	var err error
	switch e.Call {
	case CallMmap:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		if e.Len, err = num(1); err != nil {
			return err
		}
		e.Prot = s.prot(arg(2))
		e.Flags, e.FlagsText = s.flags(arg(3))
		e.FD = parseFD(arg(4))
		if i := strings.IndexByte(arg(4), '<'); i >= 0 && strings.HasSuffix(arg(4), ">") {
			e.Path = s.str(arg(4)[i+1 : len(arg(4))-1])
		}
		e.Offset, _ = parseNum(arg(5))
	case CallMunmap:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		e.Len, err = num(1)
	case CallMremap:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		if e.Len, err = num(1); err != nil {
			return err
		}
		if e.NewLen, err = num(2); err != nil {
			return err
		}
		e.Flags, e.FlagsText = s.flags(arg(3))
		if len(args) > 4 {
			e.NewAddr, _ = parseNum(args[4])
		}
	case CallBrk:
		e.Addr, err = num(0)
	case CallMadvise:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		if e.Len, err = num(1); err != nil {
			return err
		}
		e.Advice = s.str(strings.TrimPrefix(arg(2), "MADV_"))
	case CallShmat:
		e.Addr, _ = parseNum(arg(1))
	case CallShmdt:
		e.Addr, err = num(0)
	case CallClone:
		for _, a := range args {
			a = strings.TrimLeft(a, "{")
			if v, ok := strings.CutPrefix(a, "flags="); ok {
				e.Flags, e.FlagsText = s.flags(strings.TrimRight(v, "}"))
			}
		}
	}
	return err
}

// parseStraceFrame reads " > /lib/x.so(sym+0x13) [0x1019b3]",
// " > /path() [0xoff]" and " > unexpected_backtracing_error [0x…]".
func parseStraceFrame(s string) Frame {
	var f Frame
	if i := strings.LastIndex(s, " ["); i >= 0 && strings.HasSuffix(s, "]") {
		f.Addr, _ = parseNum(s[i+2 : len(s)-1])
		s = s[:i]
	}
	if strings.HasSuffix(s, ")") {
		if i := strings.LastIndexByte(s, '('); i >= 0 {
			f.Module = s[:i]
			sym := s[i+1 : len(s)-1]
			if j := strings.LastIndex(sym, "+0x"); j >= 0 {
				sym = sym[:j]
			}
			f.Func = sym
			return f
		}
	}
	f.Func = s
	return f
}

// parseStraceTime reads -t, -tt, -ttt and -r stamps as seconds.
func parseStraceTime(s string) (float64, bool) {
	if len(s) == 0 || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	if len(s) >= 8 && s[2] == ':' && s[5] == ':' {
		h, err1 := strconv.Atoi(s[:2])
		m, err2 := strconv.Atoi(s[3:5])
		sec, ok := parseDecimal(s[6:])
		if err1 != nil || err2 != nil || !ok {
			return 0, false
		}
		return float64(h*3600+m*60) + sec, true
	}
	if strings.IndexByte(s, '.') < 0 {
		return 0, false
	}
	return parseDecimal(s)
}

// parseDecimal reads "123.456789" exactly as strace prints seconds, faster
// than ParseFloat; anything else falls back to it.
func parseDecimal(s string) (float64, bool) {
	var whole, frac, scale uint64 = 0, 0, 1
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		whole = whole*10 + uint64(s[i]-'0')
	}
	if i == 0 || i > 12 {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	if i < len(s) {
		if s[i] != '.' || len(s)-i > 10 {
			v, err := strconv.ParseFloat(s, 64)
			return v, err == nil
		}
		for i++; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
			frac = frac*10 + uint64(s[i]-'0')
			scale *= 10
		}
	}
	return float64(whole) + float64(frac)/float64(scale), true
}

// scanArgs walks an argument list, skipping nested (), [], {} and quoted
// strings, and appends each top-level argument to out. With call set it
// stops at the ')' that closes the list and returns its index (−1 when it
// is missing); otherwise it reads all of s.
func scanArgs(s string, out []string, call bool) ([]string, int) {
	depth, start := 0, 0
	inQuote := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inQuote {
			switch c {
			case '\\':
				i++
			case '"':
				inQuote = false
			}
			continue
		}
		switch c {
		case '"':
			inQuote = true
		case '(', '[', '{':
			depth++
		case ']', '}':
			depth--
		case ')':
			if depth == 0 && call {
				if t := strings.TrimSpace(s[start:i]); t != "" || len(out) > 0 {
					out = append(out, t)
				}
				return out, i
			}
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	if call {
		return out, -1
	}
	if t := strings.TrimSpace(s[start:]); t != "" || len(out) > 0 {
		out = append(out, t)
	}
	return out, len(s)
}

// matchingParen finds the ')' closing an argument list that starts just
// before s.
func matchingParen(s string) int {
	_, i := scanArgs(s, nil, true)
	return i
}

// splitArgs splits at top-level commas.
func splitArgs(s string) []string {
	out, _ := scanArgs(s, nil, false)
	return out
}

// parseNum reads "NULL", hex "0x…" or decimal.
func parseNum(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "NULL":
		return 0, nil
	case strings.HasPrefix(s, "0x"), strings.HasPrefix(s, "0X"):
		return strconv.ParseUint(s[2:], 16, 64)
	}
	return strconv.ParseUint(s, 10, 64)
}

// parseFD reads "3", "-1" or "3</path/to/file>" (strace -y).
func parseFD(s string) int64 {
	if i := strings.IndexByte(s, '<'); i > 0 {
		s = s[:i]
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return -1
	}
	return v
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isIdent(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}
