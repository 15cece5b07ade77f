package mallocinfo

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// docParser decodes one <malloc> document from the lines that hold it,
// without copying them: glibc writes one element per line, so nearly every
// tag is read where it lies in the reader's buffer. Only markup that spans
// lines is gathered, up to maxLineBytes.
//
// It reads the subset of XML that malloc_info is — elements with quoted
// attributes, comments and processing instructions skipped, text ignored —
// and refuses the rest (DTDs, CDATA, unknown entities) by name. It is
// checked against encoding/xml by FuzzParseMatchesEncodingXML.
type docParser struct {
	name string

	info  *Info
	path  []string // open elements, innermost last
	arena *Arena
	done  bool // the root element is closed
	size  int  // bytes fed

	unknown     map[string]bool
	moreUnknown bool // past maxUnknown names, more are only counted

	partial     []byte // markup begun on an earlier line
	partialLine int
	scan        markupScan
	attrs       []attr // reused for every element
	// binCaps[i] is how many size classes the i-th arena of the last
	// document listed: the capacity its successor starts with, for a log
	// repeats the same shape.
	binCaps  []int
	arenaCap int // arenas of the last document: the next one's capacity
}

type attr struct{ key, value []byte }

// markupScan is how far the search for the end of one markup got.
type markupScan struct {
	kind  byte // 0 not known yet, or one of the kinds below
	quote byte // in a tag: the quote of the value being read, 0 outside
	pos   int  // next byte to look at
}

const (
	kindTag     = 't' // <name …> or </name>
	kindComment = 'c' // <!-- … -->
	kindPI      = 'p' // <? … ?>
	kindDecl    = 'd' // <!DOCTYPE …>, <![CDATA[ …: not malloc_info
)

func newDocParser(name string) *docParser {
	return &docParser{name: name, unknown: map[string]bool{}}
}

// reset readies p for a document starting on line start.
func (p *docParser) reset(start int) {
	p.info = &Info{Line: start}
	if p.arenaCap > 0 {
		p.info.Arenas = make([]Arena, 0, p.arenaCap)
	}
	p.path = p.path[:0]
	p.arena = nil
	p.done = false
	p.size = 0
	clear(p.unknown)
	p.moreUnknown = false
	p.partial = p.partial[:0]
	p.scan = markupScan{}
}

func (p *docParser) errorf(line int, format string, args ...any) error {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = parseerr.Clip(s)
		}
	}
	return &ParseError{Name: p.name, Line: line, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

// feed decodes line b (line number line) of the document. Once the root
// element closes it sets p.done and returns what follows on that line.
func (p *docParser) feed(b []byte, line int) (rest []byte, err error) {
	if p.size += len(b); p.size > maxDocumentBytes {
		return nil, p.errorf(line, "document larger than %d MiB: not malloc_info", maxDocumentBytes>>20)
	}
	if len(p.partial) > 0 {
		old := len(p.partial)
		p.partial = append(p.partial, b...)
		end := p.scan.end(p.partial)
		if end < 0 {
			if len(p.partial) > maxLineBytes {
				return nil, p.errorf(p.partialLine, "markup longer than %d KiB: not malloc_info", maxLineBytes>>10)
			}
			return nil, nil
		}
		if err := p.markup(p.partial[:end+1], p.partialLine); err != nil {
			return nil, err
		}
		b = b[end+1-old:]
		p.partial = p.partial[:0]
	}
	for !p.done {
		i := bytes.IndexByte(b, '<')
		if i < 0 {
			return nil, nil // text between elements: whitespace in malloc_info
		}
		b = b[i:]
		p.scan = markupScan{}
		end := p.scan.end(b)
		if end < 0 {
			p.partial = append(p.partial[:0], b...)
			p.partialLine = line
			return nil, nil
		}
		if err := p.markup(b[:end+1], line); err != nil {
			return nil, err
		}
		b = b[end+1:]
	}
	return b, nil
}

// end returns the index of the '>' that ends the markup m begins, or -1
// when m holds only its beginning; called again with m extended, it goes
// on where it stopped.
func (s *markupScan) end(m []byte) int {
	if s.kind == 0 {
		switch {
		case len(m) < 2:
			return -1
		case m[1] == '?':
			s.kind = kindPI
		case m[1] != '!':
			s.kind = kindTag
		case len(m) < 4:
			return -1 // "<!-" or "<!": not yet known
		case m[2] == '-' && m[3] == '-':
			s.kind, s.pos = kindComment, 4
		default:
			s.kind = kindDecl
		}
		s.pos = max(s.pos, 1)
	}
	switch s.kind {
	case kindComment, kindPI:
		closer := "-->"
		if s.kind == kindPI {
			closer = "?>"
		}
		from := max(s.pos-len(closer)+1, 2)
		if s.kind == kindComment {
			from = max(from, 4)
		}
		if i := bytes.Index(m[from:], []byte(closer)); i >= 0 {
			return from + i + len(closer) - 1
		}
		s.pos = len(m)
		return -1
	}
	i := s.pos
	for i < len(m) {
		if s.quote != 0 {
			// A value is a few bytes: a loop, not a search's call.
			for i < len(m) && m[i] != s.quote {
				i++
			}
			if i == len(m) {
				break
			}
			i++
			s.quote = 0
			continue
		}
		for ; i < len(m) && !tagStop[m[i]]; i++ {
		}
		if i == len(m) {
			break
		}
		if m[i] == '>' {
			return i
		}
		s.quote = m[i]
		i++
	}
	s.pos = len(m)
	return -1
}

// tagStop marks the bytes that end a stretch of a tag outside quotes.
var tagStop = [256]bool{'"': true, '\'': true, '>': true}

// markup handles one whole markup m, "<…>", that begins on line.
func (p *docParser) markup(m []byte, line int) error {
	switch p.scan.kind {
	case kindComment, kindPI:
		return nil
	case kindDecl:
		return p.errorf(line, "XML: %s… is not malloc_info", string(m[:min(len(m), 9)]))
	}
	if m[1] == '/' {
		name := m[2 : len(m)-1]
		for len(name) > 0 && isSpace(name[len(name)-1]) {
			name = name[:len(name)-1]
		}
		if len(name) == 0 || nameEnd(name) < len(name) {
			return p.errorf(line, "XML: malformed end tag %q", string(m))
		}
		return p.end(name, line)
	}
	body := m[1 : len(m)-1]
	selfClosing := len(body) > 0 && body[len(body)-1] == '/'
	if selfClosing {
		body = body[:len(body)-1]
	}
	n := nameEnd(body)
	name := body[:n]
	if len(name) == 0 || (n < len(body) && !isSpace(body[n])) {
		return p.errorf(line, "XML: expected an element name after <, got %q", string(m))
	}
	// Most of a document with histograms is <size> lines: read glibc's
	// exact form of them directly, and anything else the general way.
	if selfClosing && string(name) == "size" && p.arena != nil && len(p.path) == 3 && p.path[2] == "sizes" {
		if bin, ok := glibcBin(body[n:]); ok {
			p.arena.Bins = append(p.arena.Bins, bin)
			return nil
		}
	}
	if err := p.parseAttrs(body[n:], line); err != nil {
		return err
	}
	if err := p.start(name, line); err != nil {
		return err
	}
	if selfClosing {
		return p.end(name, line)
	}
	return nil
}

// glibcBin reads the attributes of a <size> element as glibc prints them,
// ` from="N" to="N" total="N" count="N"`; ok is false for any other form.
func glibcBin(b []byte) (bin Bin, ok bool) {
	fields := [...]struct {
		lit string
		dst *uint64
	}{{` from="`, &bin.From}, {`" to="`, &bin.To}, {`" total="`, &bin.Total}, {`" count="`, &bin.Count}}
	for _, f := range fields {
		if !bytes.HasPrefix(b, []byte(f.lit)) {
			return Bin{}, false
		}
		b = b[len(f.lit):]
		q := bytes.IndexByte(b, '"')
		if q < 0 {
			return Bin{}, false
		}
		if *f.dst, ok = parseUint(b[:q]); !ok {
			return Bin{}, false
		}
		b = b[q:]
	}
	if len(b) == 0 || b[0] != '"' {
		return Bin{}, false
	}
	for _, c := range b[1:] {
		if !isSpace(c) {
			return Bin{}, false
		}
	}
	return bin, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// nameEnd returns the length of the element or attribute name b starts
// with: up to a space or a character XML does not allow in names.
func nameEnd(b []byte) int {
	for i, c := range b {
		if notInName[c] {
			return i
		}
	}
	return len(b)
}

var notInName = [256]bool{' ': true, '\t': true, '\n': true, '\r': true, '=': true, '"': true, '\'': true, '<': true, '>': true, '/': true}

// parseAttrs reads `key="value"…` into p.attrs.
func (p *docParser) parseAttrs(b []byte, line int) error {
	p.attrs = p.attrs[:0]
	for {
		for len(b) > 0 && isSpace(b[0]) {
			b = b[1:]
		}
		if len(b) == 0 {
			return nil
		}
		k := 0
		for k < len(b) && b[k] != '=' && !isSpace(b[k]) {
			k++
		}
		key := b[:k]
		b = b[k:]
		for len(b) > 0 && isSpace(b[0]) {
			b = b[1:]
		}
		if len(key) == 0 || len(b) == 0 || b[0] != '=' {
			return p.errorf(line, "XML: attribute %s has no value", string(key))
		}
		b = b[1:]
		for len(b) > 0 && isSpace(b[0]) {
			b = b[1:]
		}
		if len(b) == 0 || (b[0] != '"' && b[0] != '\'') {
			return p.errorf(line, "XML: the value of attribute %s is not quoted", string(key))
		}
		// One pass over the value, which is a number or a word: three
		// searches of a few bytes each cost more in their calls than this.
		quote, q, amp, lt := b[0], 1, false, false
		for ; q < len(b) && b[q] != quote; q++ {
			amp = amp || b[q] == '&'
			lt = lt || b[q] == '<'
		}
		if q == len(b) {
			return p.errorf(line, "XML: the value of attribute %s is not closed", string(key))
		}
		value := b[1:q]
		b = b[q+1:]
		if amp {
			v, err := unescape(value)
			if err != nil {
				return p.errorf(line, "XML: attribute %s: %v", string(key), err)
			}
			value = v
			lt = bytes.IndexByte(value, '<') >= 0
		}
		if lt {
			return p.errorf(line, "XML: unescaped < in attribute %s", string(key))
		}
		p.attrs = append(p.attrs, attr{key, value})
	}
}

// unescape replaces XML's five predefined entities and character
// references; malloc_info's values are numbers and words and have none.
func unescape(v []byte) ([]byte, error) {
	out := make([]byte, 0, len(v))
	for len(v) > 0 {
		i := bytes.IndexByte(v, '&')
		if i < 0 {
			return append(out, v...), nil
		}
		out = append(out, v[:i]...)
		v = v[i:]
		semi := bytes.IndexByte(v, ';')
		if semi < 0 {
			return nil, errors.New("& without ;")
		}
		ent := string(v[1:semi])
		v = v[semi+1:]
		switch ent {
		case "lt":
			out = append(out, '<')
		case "gt":
			out = append(out, '>')
		case "amp":
			out = append(out, '&')
		case "quot":
			out = append(out, '"')
		case "apos":
			out = append(out, '\'')
		default:
			var r uint64
			var err error
			switch {
			case len(ent) > 2 && ent[0] == '#' && ent[1] == 'x':
				r, err = strconv.ParseUint(ent[2:], 16, 32)
			case len(ent) > 1 && ent[0] == '#':
				r, err = strconv.ParseUint(ent[1:], 10, 32)
			default:
				err = errors.New("unknown")
			}
			if err != nil || r == 0 || r > 0x10FFFF || (r >= 0xD800 && r < 0xE000) {
				return nil, fmt.Errorf("unknown entity &%s;", parseerr.Clip(ent))
			}
			out = fmt.Appendf(out, "%c", rune(r))
		}
	}
	return out, nil
}

func (p *docParser) attr(key string) ([]byte, bool) {
	for _, a := range p.attrs {
		if string(a.key) == key {
			return a.value, true
		}
	}
	return nil, false
}

// num reads a byte count or a chunk count.
func (p *docParser) num(key string) (uint64, error) {
	v, ok := p.attr(key)
	if !ok {
		return 0, fmt.Errorf("attribute %s missing", key)
	}
	n, ok := parseUint(v)
	if !ok {
		return 0, fmt.Errorf("attribute %s=%q is not a byte count", key, parseerr.Clip(string(v)))
	}
	return n, nil
}

// parseUint is strconv.ParseUint(s, 10, 64) for bytes, without making a
// string of them.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// elementName returns name as a string, without allocating for the
// elements malloc_info has.
func elementName(name []byte) string {
	switch string(name) {
	case "malloc":
		return "malloc"
	case "heap":
		return "heap"
	case "sizes":
		return "sizes"
	case "size":
		return "size"
	case "unsorted":
		return "unsorted"
	case "total":
		return "total"
	case "system":
		return "system"
	case "aspace":
		return "aspace"
	}
	return string(name)
}

// typeAttr returns the type attribute, without allocating for the types
// malloc_info has.
func (p *docParser) typeAttr() string {
	v, _ := p.attr("type")
	switch string(v) {
	case "fast":
		return "fast"
	case "rest":
		return "rest"
	case "mmap":
		return "mmap"
	case "current":
		return "current"
	case "max":
		return "max"
	case "total":
		return "total"
	case "mprotect":
		return "mprotect"
	case "subheaps":
		return "subheaps"
	}
	return string(v)
}

func (p *docParser) noteUnknown(key string) {
	key = trimLabel(key)
	if len(p.unknown) < maxUnknown || p.unknown[key] {
		p.unknown[key] = true
	} else {
		p.moreUnknown = true
	}
}

// start handles <el …>: where it sits decides what it means, in an
// arena's <heap> or directly in <malloc> for the process's totals.
func (p *docParser) start(name []byte, line int) error {
	el := elementName(name)
	parent := ""
	if len(p.path) > 0 {
		parent = p.path[len(p.path)-1]
	}
	if len(p.path) == maxDepth {
		return p.errorf(line, "<%s> nests %d elements deep: malloc_info nests 4 deep", el, len(p.path)+1)
	}
	p.path = append(p.path, el)
	depth := len(p.path)
	info, arena := p.info, p.arena
	typ := p.typeAttr()
	inArena := parent == "heap" && arena != nil && depth == 3
	atTop := parent == "malloc" && depth == 2
	switch {
	case el == "malloc" && parent == "":
		v, _ := p.attr("version")
		info.Version = string(v)
		if info.Version != "1" {
			info.Warnings = append(info.Warnings, fmt.Sprintf("malloc_info version %q: this reader knows version 1; figures may be misread", parseerr.Clip(info.Version)))
		}
	case parent == "":
		return p.errorf(line, "expected <malloc>, got <%s>", el)
	case el == "heap" && atTop:
		return p.startHeap(line)
	case (el == "size" || el == "unsorted") && parent == "sizes" && arena != nil && depth == 4:
		bin, err := p.bin()
		if err != nil {
			return p.errorf(line, "<%s>: %v", el, err)
		}
		if el == "unsorted" {
			arena.Unsorted = &bin
		} else {
			arena.Bins = append(arena.Bins, bin)
		}
	case el == "sizes" && inArena:
	case el == "total" && (inArena || atTop):
		return p.startTotal(line, typ, parent, inArena)
	case (el == "system" || el == "aspace") && (inArena || atTop):
		return p.startSystem(line, el, typ, inArena)
	default:
		p.noteUnknown("<" + el + "> in <" + parent + ">")
	}
	return nil
}

// startHeap opens an arena: <heap nr="N">.
func (p *docParser) startHeap(line int) error {
	info := p.info
	nrText, _ := p.attr("nr")
	nr, err := strconv.Atoi(string(nrText))
	if err != nil {
		return p.errorf(line, "<heap> nr %q is not a number", string(nrText))
	}
	var bins []Bin
	if n := len(info.Arenas); n < len(p.binCaps) && p.binCaps[n] > 0 {
		bins = make([]Bin, 0, p.binCaps[n])
	}
	info.Arenas = append(info.Arenas, Arena{Nr: nr, Bins: bins})
	p.arena = &info.Arenas[len(info.Arenas)-1]
	return nil
}

// startTotal reads <total type=… count=… size=…> in an arena (inArena) or
// at the top.
func (p *docParser) startTotal(line int, typ, parent string, inArena bool) error {
	count, err1 := p.num("count")
	size, err2 := p.num("size")
	if err := errors.Join(err1, err2); err != nil {
		return p.errorf(line, "<total type=%q>: %v", typ, err)
	}
	info, arena := p.info, p.arena
	var dst *Total
	switch t := typ; {
	case inArena && t == "fast":
		dst = &arena.Fast
	case inArena && t == "rest":
		dst = &arena.Rest
	case !inArena && t == "fast":
		dst = &info.Fast
	case !inArena && t == "rest":
		dst = &info.Rest
	case !inArena && t == "mmap":
		dst = &info.Mmap
	default:
		p.noteUnknown(fmt.Sprintf("<total type=%q> in <%s>", parseerr.Clip(t), parent))
		return nil
	}
	*dst = Total{Count: count, Size: size}
	return nil
}

// startSystem reads <system type=… size=…> and <aspace …> (el) in an arena
// (inArena) or at the top.
func (p *docParser) startSystem(line int, el, typ string, inArena bool) error {
	size, err := p.num("size")
	if err != nil {
		return p.errorf(line, "<%s type=%q>: %v", el, typ, err)
	}
	sizes := &p.info.SystemSizes
	if inArena {
		sizes = &p.arena.SystemSizes
	}
	switch t := typ; {
	case el == "system" && t == "current":
		sizes.SystemCurrent = size
	case el == "system" && t == "max":
		sizes.SystemMax = size
	case el == "aspace" && t == "total":
		sizes.AspaceTotal = size
	case el == "aspace" && t == "mprotect":
		sizes.AspaceMprotect = size
	case el == "aspace" && t == "subheaps" && inArena:
		p.arena.Subheaps, p.arena.HasSubheaps = size, true
	default:
		p.noteUnknown(fmt.Sprintf("<%s type=%q>", el, parseerr.Clip(t)))
	}
	return nil
}

func (p *docParser) bin() (Bin, error) {
	from, err1 := p.num("from")
	to, err2 := p.num("to")
	total, err3 := p.num("total")
	count, err4 := p.num("count")
	return Bin{From: from, To: to, Total: total, Count: count}, errors.Join(err1, err2, err3, err4)
}

// end handles </el>.
func (p *docParser) end(name []byte, line int) error {
	if len(p.path) == 0 || p.path[len(p.path)-1] != string(name) {
		open := "nothing"
		if len(p.path) > 0 {
			open = "<" + p.path[len(p.path)-1] + ">"
		}
		return p.errorf(line, "XML: %s closed by </%s>", open, string(name))
	}
	if p.path[len(p.path)-1] == "heap" {
		p.arena = nil
	}
	p.path = p.path[:len(p.path)-1]
	if len(p.path) == 0 {
		p.done = true
	}
	return nil
}

// finish returns the document decoded, with its warnings in order.
func (p *docParser) finish() (*Info, error) {
	info := p.info
	p.arenaCap = len(info.Arenas)
	p.binCaps = p.binCaps[:0]
	for i := range info.Arenas {
		p.binCaps = append(p.binCaps, len(info.Arenas[i].Bins))
	}
	if info.Version == "" && len(info.Arenas) == 0 {
		return nil, p.errorf(info.Line, "no <malloc> element")
	}
	for u := range p.unknown {
		info.Warnings = append(info.Warnings, "ignored unknown element "+u)
	}
	if p.moreUnknown {
		info.Warnings = append(info.Warnings, fmt.Sprintf("ignored more unknown elements than the %d listed", maxUnknown))
	}
	sort.Strings(info.Warnings)
	return info, nil
}
