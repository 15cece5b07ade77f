package syscalltrace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// StraceReader reads strace output: -f with -o (“PID  call…”) or on stderr
// (“[pid N] call…”), one -ff file, with or without -t/-tt/-ttt/-r and -T,
// -k stack frames, split calls (<unfinished ...> / <... resumed>), and
// "Process N attached" noise cutting into a line.
//
// The input is cut into chunks of whole lines that decode independently —
// on Workers goroutines when set — and are stitched together in order: a
// call split across two chunks is rejoined here, and so is what the first
// "[pid N]" line says about the lines before it.
type StraceReader struct {
	// Workers, when more than zero before the first Next, decodes that many
	// chunks at once on their own goroutines (at most maxWorkers); Close
	// stops them.
	Workers int

	// Foreign counts lines that are not strace's (the traced program's own
	// stderr); FirstForeign is the first one's line number.
	Foreign      int
	FirstForeign int

	r    io.Reader
	name string
	// defaultTID is the task of lines without a pid prefix: the -ff file's
	// pid, or, in stderr output, the traced process once it is known.
	defaultTID int
	chunkSize  int
	src        chunkSource
	dec        *straceDecoder // rejoins calls split across chunks
	pending    map[int]pendingCall
	base       int // lines in the chunks before cur
	cur        *straceChunk
	out        []*Event // the events of cur, delivered from outAt on
	outAt      int
	err        error // io.EOF or the first error, returned once out is drained

	// On stderr, strace writes the traced process's lines without a pid
	// until a second task exists, then prefixes them all. Those early
	// events wait in early until the first "[pid N]" of a task that was
	// never announced as attached names the process; attached holds the
	// announced ones.
	early      []Event
	originDone bool
	attached   map[int]bool
}

// maxWorkers bounds the decoding goroutines: each decodes ~450 MB/s and the
// replay, which must take events in order on one goroutine, ~750 MB/s, so
// more would only hold more chunks in memory.
const maxWorkers = 4

// maxEarly bounds the events held while the traced process's pid is unknown.
const maxEarly = 10000

// pendingCall is the first part of a call split across chunks.
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
	return &StraceReader{r: r, name: name, defaultTID: defaultTID, chunkSize: defaultChunkSize,
		pending: map[int]pendingCall{}, dec: newStraceDecoder(name, defaultTID)}
}

// Next returns the next memory-relevant event, or io.EOF. The event is
// valid until the following call.
func (s *StraceReader) Next() (*Event, error) {
	for s.outAt == len(s.out) {
		if s.err != nil {
			return nil, s.err
		}
		s.out, s.outAt = s.out[:0], 0
		s.advance()
	}
	e := s.out[s.outAt]
	s.outAt++
	return e, nil
}

// Close stops the decoding goroutines, if any.
func (s *StraceReader) Close() {
	if s.src != nil {
		s.src.close()
	}
}

// advance assembles the next chunk into out, or sets err at the end.
func (s *StraceReader) advance() {
	if s.src == nil {
		sp := &splitter{r: s.r, size: s.chunkSize}
		if s.Workers > 0 {
			name, tid := s.name, s.defaultTID // the workers' own copies
			s.src = startParallel(sp, min(s.Workers, maxWorkers), func() *straceDecoder { return newStraceDecoder(name, tid) })
		} else {
			s.src = &sequentialSource{sp: sp, dec: s.dec}
		}
	}
	if s.cur != nil {
		s.src.release(s.cur)
		s.cur = nil
	}
	c := s.src.next()
	if c == nil {
		s.finish(io.EOF)
		return
	}
	s.cur = c
	s.Foreign += c.foreign
	if s.FirstForeign == 0 && c.firstForeign > 0 {
		s.FirstForeign = s.base + c.firstForeign
	}
	if err := s.assemble(c); err != nil {
		s.finish(err)
		return
	}
	s.base += c.lines
	if c.last {
		err := c.readErr
		if err == nil {
			err = io.EOF
		} else {
			err = &ParseError{Name: s.name, Line: s.base + 1, Msg: "read failed: " + err.Error(), Err: err}
		}
		s.finish(err)
	}
}

// finish ends the stream: the events read before the end or the bad line are
// still delivered, then err, for good.
func (s *StraceReader) finish(err error) {
	s.err = err
	if len(s.early) > 0 {
		s.setOrigin(s.defaultTID)
	}
	if s.src != nil {
		s.src.close()
	}
}

// assemble takes a decoded chunk's records in order into out: events get
// absolute line numbers and the task of unprefixed lines, and calls split
// across chunks are rejoined.
func (s *StraceReader) assemble(c *straceChunk) error {
	for _, rec := range c.recs {
		switch rec.kind {
		case recEvent:
			e := &c.events[rec.ev]
			e.Line += s.base
			e.EnterKey += float64(s.base)
			e.DoneKey += float64(s.base)
			s.deliver(e)
		case recUnfinished:
			sp := &c.splits[rec.aux]
			tid := s.tidOf(sp.tid)
			if sp.joined {
				// Its end is in this chunk: what was pending is replaced,
				// then taken.
				delete(s.pending, tid)
				continue
			}
			s.pending[tid] = pendingCall{name: sp.name, args: strings.Clone(sp.text), line: s.base + sp.line, time: sp.time, hasTime: sp.hasTime}
		case recResumed:
			sp := &c.splits[rec.aux]
			tid := s.tidOf(sp.tid)
			p, ok := s.pending[tid]
			delete(s.pending, tid)
			if !ok || p.name != sp.name || rec.ev < 0 {
				// The start was before the trace began (or in another file),
				// or the call is not one the replay needs: nothing to rejoin.
				continue
			}
			e := &c.events[rec.ev]
			call, known := callOf(sp.name)
			if err := s.dec.complete(e, call, known, p.line, s.base+sp.line, sp.tid, p.time, p.hasTime, p.args+sp.text, sp.whole); err != nil {
				return err // its lines are the input's already
			}
			s.deliver(e)
		case recPid:
			if !s.originDone && s.defaultTID == 0 && !s.attached[rec.aux] {
				s.setOrigin(rec.aux)
			}
		case recAttached:
			if s.attached == nil {
				s.attached = map[int]bool{}
			}
			s.attached[rec.aux] = true
		}
	}
	if c.err != nil {
		// At the chunk's line: make it the input's.
		var pe *ParseError
		if errors.As(c.err, &pe) {
			at := *pe
			at.Line += s.base
			return &at
		}
		return c.err
	}
	return nil
}

// tidOf is the task of a line: its prefix, or for unprefixed lines the
// traced process once known.
func (s *StraceReader) tidOf(tid int) int {
	if tid == 0 {
		return s.defaultTID
	}
	return tid
}

func (s *StraceReader) deliver(e *Event) {
	if e.TID == 0 {
		if !s.originDone && s.defaultTID == 0 {
			s.early = append(s.early, *e)
			if len(s.early) >= maxEarly {
				s.setOrigin(0)
			}
			return
		}
		e.TID = s.defaultTID
	}
	s.out = append(s.out, e)
}

// setOrigin gives the held early events the traced process's pid.
func (s *StraceReader) setOrigin(pid int) {
	s.originDone = true
	s.defaultTID = pid
	for i := range s.early {
		s.early[i].TID = pid
		s.out = append(s.out, &s.early[i])
	}
	s.early = nil
}

var (
	attachedNoise = []byte("strace: Process ")
	unfinished    = " <unfinished ...>"
	detached      = " <detached ...>"
)

// straceDecoder decodes the lines of a chunk. Each worker has its own: it
// keeps the caches that make repeated strings cheap.
type straceDecoder struct {
	name string
	// knownTID is the task of unprefixed lines when the caller knew it (the
	// pid of a -ff file); 0 leaves them to the reader's stitching.
	knownTID  int
	intern    interner
	protCache map[string]word
	flagCache map[string]word
	lastProt  word
	lastFlags word
	argv      [16]string
	join      []byte // a split call's parts, joined
	// stacks maps a block of frame lines, as read, to its frames; nil
	// parses every block.
	stacks     map[string][]Frame
	stackBytes int

	// The chunk being decoded.
	c    *straceChunk
	line int       // its lines so far
	open openCalls // task → its unfinished call in c.splits
	pids map[int]bool
	// target is the event in c.events that "> " frame lines attach to:
	// the call on the line before them; −1 for none.
	target    int
	partial   []byte // a line cut by attach noise, waiting for its end
	partialAt int
}

// openCalls maps a task to its unfinished call. Few tasks have one at a
// time, and every split call puts, finds and deletes: a short list beats a
// map's hashing until it grows long, and then a map takes over.
type openCalls struct {
	list []openCall
	many map[int]int
}

type openCall struct{ tid, split int }

const maxOpenList = 32

func (o *openCalls) reset() {
	o.list = o.list[:0]
	clear(o.many)
}

func (o *openCalls) put(tid, split int) {
	if len(o.many) > 0 {
		o.many[tid] = split
		return
	}
	for i := range o.list {
		if o.list[i].tid == tid {
			o.list[i].split = split
			return
		}
	}
	if len(o.list) < maxOpenList {
		o.list = append(o.list, openCall{tid, split})
		return
	}
	if o.many == nil {
		o.many = map[int]int{}
	}
	for _, c := range o.list {
		o.many[c.tid] = c.split
	}
	o.list = o.list[:0]
	o.many[tid] = split
}

// take removes tid's unfinished call and returns it.
func (o *openCalls) take(tid int) (int, bool) {
	if len(o.many) > 0 {
		split, ok := o.many[tid]
		delete(o.many, tid)
		return split, ok
	}
	for i, c := range o.list {
		if c.tid == tid {
			last := len(o.list) - 1
			o.list[i] = o.list[last]
			o.list = o.list[:last]
			return c.split, true
		}
	}
	return 0, false
}

func newStraceDecoder(name string, knownTID int) *straceDecoder {
	return &straceDecoder{name: name, knownTID: knownTID, intern: interner{}, protCache: map[string]word{},
		flagCache: map[string]word{}, pids: map[int]bool{}, stacks: map[string][]Frame{}}
}

// decodeChunk decodes c's lines into its records; it stops at the first
// malformed line, setting c.err.
func (d *straceDecoder) decodeChunk(c *straceChunk) {
	c.reset()
	d.c, d.line, d.target, d.partial = c, 0, -1, nil
	d.open.reset()
	clear(d.pids)
	buf := c.buf
	for len(buf) > 0 {
		raw := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			raw, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		d.line++
		if len(raw) > maxLine {
			c.err = &ParseError{Name: d.name, Line: d.line, Msg: fmt.Sprintf("line longer than %d KiB", maxLine>>10), Err: ErrMalformed}
			break
		}
		if isFrameLine(raw) {
			buf = d.frameBlock(raw, buf)
			continue
		}
		if n := len(raw); n > 0 && raw[n-1] == '\r' {
			raw = raw[:n-1]
		}
		if err := d.handle(raw); err != nil {
			c.err = err
			break
		}
	}
	if d.partial != nil && c.err == nil {
		// The chunk ended inside a line cut by attach noise (the splitter
		// found no better place): its two parts are counted, not joined.
		d.foreign(d.partialAt)
	}
	c.lines = d.line
	d.c = nil
}

// isFrameLine reports whether raw is a -k "> " frame line.
func isFrameLine(raw []byte) bool {
	t := bytes.TrimLeft(raw, " ")
	return len(t) >= 2 && t[0] == '>' && t[1] == ' '
}

// Bounds of a decoder's stack cache: stacks, the frames they hold and
// their lines' bytes (the keys).
const (
	maxStacks     = 1 << 14
	maxStackBytes = 8 << 20
)

// frameBlock takes the frame lines of -k that follow a call, first (a
// line just read and counted) and those at the start of rest, for the event on the line
// before them, and returns what follows them. Programs make their calls
// from few stacks, so a block of lines seen before takes its frames from a
// cache, unparsed: the frames are shared, and never written to.
func (d *straceDecoder) frameBlock(first, rest []byte) []byte {
	end := len(first) // of the block's last line, in block
	block := first[:cap(first)]
	for len(rest) > 0 {
		next := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			next = rest[:i]
		}
		if len(next) > maxLine || !isFrameLine(next) {
			break
		}
		d.line++
		end += 1 + len(next)
		rest = rest[min(len(next)+1, len(rest)):]
	}
	if d.target < 0 {
		return rest // frames of no call the replay needs
	}
	block = block[:end]
	e := &d.c.events[d.target]
	key := unsafe.String(unsafe.SliceData(block), len(block))
	frames, ok := d.stacks[key]
	if !ok {
		frames = d.parseFrames(block)
		if d.stacks != nil && len(d.stacks) < maxStacks && d.stackBytes+len(block) <= maxStackBytes {
			d.stacks[string(block)] = frames
			d.stackBytes += len(block)
		}
	}
	if len(e.Frames) == 0 {
		e.Frames = frames
	} else {
		e.Frames = append(e.Frames[:len(e.Frames):len(e.Frames)], frames...)
	}
	return rest
}

// parseFrames parses a block of frame lines; the slice's capacity is its
// length, so that appending to it copies.
func (d *straceDecoder) parseFrames(block []byte) []Frame {
	frames := make([]Frame, 0, bytes.Count(block, []byte{'\n'})+1)
	for len(block) > 0 {
		raw := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			raw, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		if n := len(raw); n > 0 && raw[n-1] == '\r' {
			raw = raw[:n-1]
		}
		t := bytes.TrimLeft(raw, " ")[2:]
		f := parseStraceFrame(unsafe.String(unsafe.SliceData(t), len(t)))
		f.Func, f.Module = d.str(f.Func), d.str(f.Module)
		frames = append(frames, f)
	}
	return frames[:len(frames):len(frames)]
}

func (d *straceDecoder) foreign(line int) {
	d.c.foreign++
	if d.c.firstForeign == 0 {
		d.c.firstForeign = line
	}
}

// newEvent adds an event to the chunk and returns its index.
func (d *straceDecoder) newEvent() int {
	d.c.events = append(d.c.events, Event{})
	return len(d.c.events) - 1
}

func (d *straceDecoder) record(kind recKind, ev, aux int) {
	d.c.recs = append(d.c.recs, straceRec{kind: kind, ev: int32(ev), aux: aux})
}

// handle decodes one line that is not a "> " frame line (decodeChunk takes
// those in blocks).
func (d *straceDecoder) handle(raw []byte) error {
	d.target = -1
	line, lineNo, whole := d.rejoin(raw)
	if !whole || isBlank(line) {
		return nil
	}
	tid, rest, err := d.taskOf(line, lineNo)
	if err != nil {
		return err
	}
	ts, hasTime, rest := stampOf(rest)
	switch {
	case strings.HasPrefix(rest, "+++ "):
		ev := d.newEvent()
		d.c.events[ev] = Event{Line: lineNo, TID: tid, Time: ts, HasTime: hasTime, Call: CallExit, Name: "exit",
			EnterKey: float64(lineNo), DoneKey: float64(lineNo),
			ExitStatus: d.str(strings.TrimSuffix(strings.TrimPrefix(rest, "+++ "), " +++"))}
		d.record(recEvent, ev, 0)
		return nil
	case strings.HasPrefix(rest, "--- "), strings.HasPrefix(rest, "strace: "), strings.HasPrefix(rest, "???"):
		return nil // signals, strace's own messages
	case strings.HasPrefix(rest, "<... "):
		return d.resumed(rest, line, lineNo, tid)
	}
	return d.call(rest, line, lineNo, tid, ts, hasTime)
}

// isBlank reports whether line is empty or white space; most lines start
// with a digit or '[', which settles it at the first byte.
func isBlank(line string) bool {
	return line == "" || (line[0] <= ' ' || line[0] >= utf8.RuneSelf) && strings.TrimSpace(line) == ""
}

// rejoin returns the line raw is part of, a view of the chunk valid until
// the reader is done with it (what outlives the chunk is copied, interned,
// where it is kept), and its line number. "strace: Process N attached" may
// land in the middle of another line, which then continues on the next
// line: the noise is cut out and the parts rejoined. whole is false while
// the line's end is still to come.
func (d *straceDecoder) rejoin(raw []byte) (line string, lineNo int, whole bool) {
	lineNo = d.line
	line = unsafe.String(unsafe.SliceData(raw), len(raw))
	interrupted := false
	// The noise ends its line, which spares searching every line for it.
	for strings.HasSuffix(line, "tached") {
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
			d.record(recAttached, -1, n)
		}
		line = line[:i] + word[len(" attached"):]
		interrupted = interrupted || i > 0
	}
	if d.partial != nil {
		line = string(d.partial) + line
		lineNo = d.partialAt
		d.partial = nil
	}
	if interrupted {
		d.partial, d.partialAt = []byte(line), lineNo
		return "", 0, false
	}
	return line, lineNo, true
}

// taskOf reads a line's task prefix: "[pid  N] " (stderr) or "N  " (-o
// with -f); without one the task is the known one (or 0). It returns what
// follows.
func (d *straceDecoder) taskOf(line string, lineNo int) (tid int, rest string, err error) {
	tid = d.knownTID
	rest = skipSpaces(line)
	if strings.HasPrefix(rest, "[pid ") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return 0, "", d.malformed(lineNo, "unclosed [pid", line)
		}
		n, ok := atoi(strings.TrimSpace(rest[5:end]))
		if !ok {
			return 0, "", d.malformed(lineNo, "bad pid", line)
		}
		if d.knownTID == 0 && !d.pids[n] {
			d.pids[n] = true
			d.record(recPid, -1, n)
		}
		return n, skipSpaces(rest[end+1:]), nil
	}
	if i := strings.IndexByte(rest, ' '); i > 0 {
		if n, ok := atoi(rest[:i]); ok {
			return n, skipSpaces(rest[i:]), nil
		}
	}
	return tid, rest, nil
}

// stampOf reads a line's timestamp, if any: -t 12:34:56, -tt
// 12:34:56.123456, -ttt 1700000000.123456, -r 0.000123 (relative).
func stampOf(rest string) (ts float64, hasTime bool, after string) {
	if ts, ok := clockMicros(rest); ok {
		return ts, true, skipSpaces(rest[len("12:34:56.123456"):])
	}
	if i := strings.IndexByte(rest, ' '); i > 0 {
		if v, ok := parseStraceTime(rest[:i]); ok {
			return v, true, skipSpaces(rest[i:])
		}
	}
	return 0, false, rest
}

// clockMicros reads the -tt stamp "12:34:56.123456 " at the start of s,
// the commonest, without a search or loops; its value is what
// parseStraceTime makes of it, rounded once the same way.
func clockMicros(s string) (float64, bool) {
	const n = len("12:34:56.123456")
	if len(s) <= n || s[2] != ':' || s[5] != ':' || s[8] != '.' || s[n] != ' ' {
		return 0, false
	}
	// The twelve digits at their fixed places, unrolled: a loop with the
	// separators' places skipped cost a quarter of the stamp's line.
	d0, d1, d3, d4, d6, d7 := s[0]-'0', s[1]-'0', s[3]-'0', s[4]-'0', s[6]-'0', s[7]-'0'
	u0, u1, u2, u3, u4, u5 := s[9]-'0', s[10]-'0', s[11]-'0', s[12]-'0', s[13]-'0', s[14]-'0'
	if d0 > 9 || d1 > 9 || d3 > 9 || d4 > 9 || d6 > 9 || d7 > 9 ||
		u0 > 9 || u1 > 9 || u2 > 9 || u3 > 9 || u4 > 9 || u5 > 9 {
		return 0, false
	}
	h := uint64(d0)*10 + uint64(d1)
	m := uint64(d3)*10 + uint64(d4)
	sec := uint64(d6)*10 + uint64(d7)
	us := ((((uint64(u0)*10+uint64(u1))*10+uint64(u2))*10+uint64(u3))*10+uint64(u4))*10 + uint64(u5)
	return float64((h*3600+m*60+sec)*1e6+us) / 1e6, true
}

// skipSpaces is s after its leading spaces: strings.TrimLeft's call and
// cutset cost a hot path of one or two spaces more than this loop.
func skipSpaces(s string) string {
	i := 0
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return s[i:]
}

// resumed decodes "<... NAME resumed> rest": the end of a call split by
// another task's line, rejoined with its start when that is in this chunk.
func (d *straceDecoder) resumed(rest, line string, lineNo, tid int) error {
	// The name has no spaces: the first one after it starts " resumed>",
	// found without a substring search.
	end := strings.IndexByte(rest[len("<... "):], ' ') + len("<... ")
	if end < len("<... ") || !strings.HasPrefix(rest[end:], " resumed>") {
		end = strings.Index(rest, " resumed>")
	}
	if end < len("<... ") {
		return d.malformed(lineNo, "expected \"<... NAME resumed>\"", line)
	}
	name := rest[len("<... "):end]
	tail := skipSpaces(rest[end+len(" resumed>"):])
	if strings.HasSuffix(tail, strings.TrimPrefix(detached, " ")) {
		// Resumed, then let go of before it returned: no outcome either.
		d.open.take(tid)
		return nil
	}
	if i, ok := d.open.take(tid); ok {
		sp := &d.c.splits[i]
		sp.joined = true
		if sp.name != name {
			return nil // not its end: nothing to rejoin
		}
		call, known := callOf(name)
		if call == CallOther {
			return nil
		}
		d.join = append(append(d.join[:0], sp.text...), tail...)
		ev := d.newEvent()
		return d.emitted(ev, d.complete(&d.c.events[ev], call, known, sp.line, lineNo, tid, sp.time, sp.hasTime, unsafe.String(unsafe.SliceData(d.join), len(d.join)), line))
	}
	// Its start is in an earlier chunk: the reader rejoins them. The
	// event holds the frames that follow.
	ev := -1
	if lookupCall(name) != CallOther {
		ev = d.newEvent()
		d.target = ev
	}
	d.c.splits = append(d.c.splits, splitCall{tid: tid, name: d.str(name), text: tail, whole: line, line: lineNo})
	d.record(recResumed, ev, len(d.c.splits)-1)
	return nil
}

// call decodes "NAME(args) = result" and "NAME(args <unfinished ...>".
func (d *straceDecoder) call(rest, line string, lineNo, tid int, ts float64, hasTime bool) error {
	open := strings.IndexByte(rest, '(')
	if open <= 0 || !isIdent(rest[:open]) {
		// strace on stderr shares it with the program: its own lines are
		// counted and skipped, not taken for calls.
		d.foreign(lineNo)
		return nil
	}
	name := rest[:open]
	// Both endings end in " ...>": one test spares most lines the two.
	ellipsis := strings.HasSuffix(rest, " ...>")
	if ellipsis && strings.HasSuffix(rest, detached) {
		// strace let go of the task in the call (strace -p stopped): how
		// it ended is not in the trace, so it changes nothing here.
		return nil
	}
	if ellipsis && strings.HasSuffix(rest, unfinished) {
		args := ""
		call, known := callOf(name)
		if call != CallOther {
			args = strings.TrimSuffix(rest[open+1:], unfinished)
		} else {
			known = d.str(name) // to match its end by name
		}
		d.c.splits = append(d.c.splits, splitCall{tid: tid, name: known, text: args, whole: line, line: lineNo, time: ts, hasTime: hasTime})
		d.open.put(tid, len(d.c.splits)-1)
		d.record(recUnfinished, -1, len(d.c.splits)-1)
		return nil
	}
	call, known := callOf(name)
	if call == CallOther {
		return nil // most lines of a trace not limited to memory calls
	}
	ev := d.newEvent()
	return d.emitted(ev, d.complete(&d.c.events[ev], call, known, lineNo, lineNo, tid, ts, hasTime, rest[open+1:], line))
}

// emitted records the event complete decoded into slot ev, or gives the
// slot back when decoding failed.
func (d *straceDecoder) emitted(ev int, err error) error {
	if err != nil {
		d.c.events = d.c.events[:ev]
		return err
	}
	d.record(recEvent, ev, 0)
	d.target = ev
	return nil
}

// complete decodes "args) = result [<dur>]" of a call the replay needs
// (call and its name from callOf) into e, keeping the frames e already has.
func (d *straceDecoder) complete(e *Event, call Call, name string, enterLine, doneLine, tid int, ts float64, hasTime bool, argsAndResult, whole string) error {
	// e is a fresh slot, or one with only frames: fill in place.
	e.Line, e.TID, e.Time, e.HasTime, e.Call, e.Name, e.FD = enterLine, tid, ts, hasTime, call, name, -1
	e.EnterKey, e.DoneKey = float64(enterLine), float64(doneLine)
	if d.decodeFast(e, argsAndResult) {
		return nil
	}
	*e = Event{Line: enterLine, TID: tid, Time: ts, HasTime: hasTime, Call: call, Name: name, FD: -1,
		EnterKey: float64(enterLine), DoneKey: float64(doneLine), Frames: e.Frames}
	return d.decodeGeneral(e, name, argsAndResult, enterLine, whole)
}

// decodeGeneral decodes any argument list and result of e.Call: nested and
// quoted arguments, -y paths, errors.
func (d *straceDecoder) decodeGeneral(e *Event, name, argsAndResult string, enterLine int, whole string) error {
	args, closeAt := scanArgs(argsAndResult, d.argv[:0], true)
	if closeAt < 0 {
		return d.malformed(enterLine, "unbalanced parentheses in the arguments", whole)
	}
	result := strings.TrimSpace(argsAndResult[closeAt+1:])
	if !strings.HasPrefix(result, "=") {
		return d.malformed(enterLine, "expected \" = result\" after the arguments", whole)
	}
	result = strings.TrimSpace(result[1:])
	var dur float64
	if i := strings.LastIndex(result, " <"); i >= 0 && strings.HasSuffix(result, ">") {
		dur, _ = parseDecimal(result[i+2 : len(result)-1]) // -T
		result = result[:i]
	}
	e.Duration = dur
	if err := decodeResult(e, result); err != nil {
		return d.malformed(enterLine, err.Error(), whole)
	}
	e.Errno = d.str(e.Errno)
	if err := d.decodeStraceArgs(e, args); err != nil {
		return d.malformed(enterLine, fmt.Sprintf("%s: %v", name, err), whole)
	}
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

func (d *straceDecoder) str(v string) string { return d.intern.str(v) }

func (d *straceDecoder) prot(v string) string {
	// Most calls repeat the previous one's words: a compare beats hashing.
	if v == d.lastProt.key {
		return d.lastProt.text
	}
	w, ok := d.protCache[v]
	if !ok {
		// Copied: without a prefix to drop, ReplaceAll returns v, a view
		// of the chunk.
		w = word{key: strings.Clone(v), text: strings.Clone(strings.ReplaceAll(v, "PROT_", "")), plain: isWord(v)}
		if len(d.protCache) < maxIntern {
			d.protCache[w.key] = w
		}
	}
	d.lastProt = w
	return w.text
}

// word is a flag word as printed (key, a copy) and decoded.
type word struct {
	key, text string
	bits      uint32
	plain     bool // key is all flag-word bytes: decodeFast may match it whole
}

func (d *straceDecoder) flags(v string) (uint32, string) {
	if v == d.lastFlags.key {
		return d.lastFlags.bits, d.lastFlags.text
	}
	w, ok := d.flagCache[v]
	if !ok {
		bits, text := parseFlags(v)
		// One flag's text is a view of v.
		w = word{key: strings.Clone(v), text: strings.Clone(text), bits: bits, plain: isWord(v)}
		if len(d.flagCache) < maxIntern {
			d.flagCache[w.key] = w
		}
	}
	d.lastFlags = w
	return w.bits, w.text
}

func (d *straceDecoder) malformed(line int, msg, text string) error {
	if len(text) > 120 {
		text = text[:120] + "…"
	}
	return &ParseError{Name: d.name, Line: line, Msg: fmt.Sprintf("%s: %q", msg, text), Err: ErrMalformed}
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

func (d *straceDecoder) decodeStraceArgs(e *Event, args []string) error {
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
		e.Prot = d.prot(arg(2))
		e.Flags, e.FlagsText = d.flags(arg(3))
		e.FD = parseFD(arg(4))
		if i := strings.IndexByte(arg(4), '<'); i >= 0 && strings.HasSuffix(arg(4), ">") {
			e.Path = d.str(arg(4)[i+1 : len(arg(4))-1])
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
		e.Flags, e.FlagsText = d.flags(arg(3))
		if len(args) > 4 {
			e.NewAddr, _ = parseNum(args[4])
		}
	case CallBrk:
		e.Addr, err = num(0)
	case CallMprotect:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		if e.Len, err = num(1); err != nil {
			return err
		}
		e.Prot = d.prot(arg(2))
	case CallMadvise:
		if e.Addr, err = num(0); err != nil {
			return err
		}
		if e.Len, err = num(1); err != nil {
			return err
		}
		e.Advice = d.str(strings.TrimPrefix(arg(2), "MADV_"))
	case CallShmat:
		e.Addr, _ = parseNum(arg(1))
	case CallShmdt:
		e.Addr, err = num(0)
	case CallClone:
		for _, a := range args {
			a = strings.TrimLeft(a, "{")
			if v, ok := strings.CutPrefix(a, "flags="); ok {
				e.Flags, e.FlagsText = d.flags(strings.TrimRight(v, "}"))
			}
		}
	}
	return err
}

// parseStraceFrame reads " > /lib/x.so(sym+0x13) [0x1019b3]",
// " > /path() [0xoff]" and " > unexpected_backtracing_error [0x…]". A
// C++ symbol has parentheses of its own
// ("libjvm.so(os::pd_reserve_memory(unsigned long, bool)+0x2a)"): the
// module ends at the parenthesis that matches the last one.
func parseStraceFrame(s string) Frame {
	var f Frame
	if i := strings.LastIndex(s, " ["); i >= 0 && strings.HasSuffix(s, "]") {
		f.Addr, _ = parseNum(s[i+2 : len(s)-1])
		s = s[:i]
	}
	if strings.HasSuffix(s, ")") {
		if i := matchingOpen(s); i >= 0 {
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

// matchingOpen returns the index of the '(' that matches s's final ')',
// or -1.
func matchingOpen(s string) int {
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ')':
			depth++
		case '(':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return -1
}

// parseStraceTime reads -t, -tt, -ttt and -r stamps as seconds.
func parseStraceTime(s string) (float64, bool) {
	if len(s) == 0 || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	if len(s) >= 8 && s[2] == ':' && s[5] == ':' {
		h, ok1 := atoi(s[:2])
		m, ok2 := atoi(s[3:5])
		if !ok1 || !ok2 {
			return 0, false
		}
		return parseDecimalPlus(s[6:], uint64(h*3600+m*60))
	}
	if strings.IndexByte(s, '.') < 0 {
		return 0, false
	}
	return parseDecimal(s)
}

// parseDecimal reads "123.456789" as strace prints seconds, faster than
// ParseFloat and as exactly: one division of two exact integers rounds
// once. Anything else falls back to ParseFloat.
func parseDecimal(s string) (float64, bool) {
	var n, scale uint64 = 0, 1
	i := 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	if i == 0 || i > 12 {
		return parseFloat(s)
	}
	if i < len(s) {
		if s[i] != '.' || len(s)-i > 10 {
			return parseFloat(s)
		}
		var ok bool
		if n, scale, ok = appendFraction(n, s[i+1:]); !ok {
			return 0, false
		}
	}
	if n >= 1<<53 {
		return parseFloat(s) // not exact as a float64
	}
	return float64(n) / float64(scale), true
}

// parseDecimalPlus is parseDecimal of s plus whole seconds, rounded once.
func parseDecimalPlus(s string, plus uint64) (float64, bool) {
	var n, scale uint64 = 0, 1
	i := 0
	for ; i < len(s) && i < 3 && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + uint64(s[i]-'0')
	}
	if i == 0 || i < len(s) && (s[i] != '.' || len(s)-i > 10) {
		return 0, false
	}
	n += plus
	if i < len(s) {
		var ok bool
		if n, scale, ok = appendFraction(n, s[i+1:]); !ok {
			return 0, false
		}
	}
	return float64(n) / float64(scale), true
}

// appendFraction appends the digits of a fraction to the integer n and
// returns it with the power of ten that now divides it; ok is false for a
// byte that is not a digit.
func appendFraction(n uint64, frac string) (_, scale uint64, ok bool) {
	scale = 1
	for i := 0; i < len(frac); i++ {
		if frac[i] < '0' || frac[i] > '9' {
			return 0, 0, false
		}
		n = n*10 + uint64(frac[i]-'0')
		scale *= 10
	}
	return n, scale, true
}

func parseFloat(s string) (float64, bool) {
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
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

// atoi reads a decimal task id.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
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
