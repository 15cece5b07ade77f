// Package mallocinfo reads glibc's malloc_info(3) XML — one document, or
// every document in a log that holds many — and explains it: per arena, the
// bytes in use, the bytes parked in free lists, and what could be returned.
//
// The format is written by __malloc_info in glibc's malloc/malloc.c; see
// https://man7.org/linux/man-pages/man3/malloc_info.3.html.
package mallocinfo

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// Sentinel errors wrapped by *ParseError.
var (
	// ErrMalformed means the XML is broken or not malloc_info's.
	ErrMalformed = errors.New("malformed malloc_info")
	// ErrTruncated means a document started but did not end.
	ErrTruncated = errors.New("truncated malloc_info")
	// ErrNoDocument means the input holds no <malloc> document.
	ErrNoDocument = errors.New("no malloc_info document")
)

// ParseError locates a failure: the input's name, its 1-based line, what
// was wrong, and the sentinel (ErrMalformed, …) it wraps.
type ParseError = parseerr.Error

// Bin is one <size> (or <unsorted>) entry: free chunks of sizes From…To,
// Count of them, Total bytes.
type Bin struct {
	From, To, Total, Count uint64
}

// Total is a <total type="…" count size/> entry: Count chunks of Size bytes.
type Total struct {
	Count, Size uint64
}

// Arena is one <heap nr="N"> element: an arena (nr 0 is the main arena).
type Arena struct {
	Nr int
	// Bins lists the <size> entries: fast bins, then regular bins.
	Bins []Bin
	// Unsorted is the unsorted bin, when malloc_info listed it.
	Unsorted *Bin
	// Fast and Rest are the free chunks in fast bins and elsewhere; Rest
	// includes the top chunk.
	Fast, Rest Total
	SystemSizes
	Subheaps    uint64 // non-main arenas only
	HasSubheaps bool
}

// SystemSizes are the <system> and <aspace> sizes, of an arena or of the
// whole process.
type SystemSizes struct {
	SystemCurrent, SystemMax    uint64 // memory held from the system, now and at most
	AspaceTotal, AspaceMprotect uint64 // address space reserved, and made accessible
}

// Info is one <malloc> document.
type Info struct {
	Version string
	Arenas  []Arena
	// Process-wide totals, as malloc_info printed them.
	Fast, Rest, Mmap Total
	SystemSizes
	// Line is where the document starts in its input (1-based).
	Line int
	// Label is the log line before the document (or the text before
	// <malloc on its own line), trimmed; "" when there is none.
	Label string
	// Warnings note what the parser tolerated: another version, unknown elements.
	Warnings []string
}

// Parse reads the first malloc_info document of r. Text around it (a log)
// is ignored. name labels errors.
func Parse(r io.Reader, name string) (*Info, error) {
	var first *Info
	err := Scan(r, name, func(info *Info) error {
		first = info
		return errStop
	})
	if err != nil && err != errStop {
		return nil, err
	}
	if first == nil {
		return nil, &ParseError{Name: name, Msg: "no <malloc> document found", Err: ErrNoDocument}
	}
	return first, nil
}

var errStop = errors.New("stop")

// Bounds on what Scan reads, so that no input — a 100 MB line, /dev/zero
// behind a pipe, XML nested a million deep — costs more than a few MiB.
const (
	// maxLineBytes bounds one line, in a document or around it. glibc writes
	// one element per line, under 100 bytes; a longer log line is refused
	// rather than gathered.
	maxLineBytes = 1 << 20
	// maxDocumentBytes bounds one document. malloc_info of 1,000 arenas
	// with every one of glibc's 138 bins in use is about 9 MB.
	maxDocumentBytes = 32 << 20
	// maxDepth bounds element nesting: malloc_info nests 4 deep
	// (<malloc><heap><sizes><size>).
	maxDepth = 8
	// maxUnknown bounds the distinct unknown elements a document's
	// warnings list.
	maxUnknown = 32
)

// Scan calls fn with every <malloc> document in r, in order: a single
// document, or a log in which an application wrote malloc_info at intervals
// between other lines. A document is decoded as it is read: memory holds
// one document's figures, never its text. fn's error stops the scan and is
// returned.
func Scan(r io.Reader, name string, fn func(*Info) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var (
		label    string
		lastText string
		lineNo   int
		found    int
		long     []byte
		carry    []byte // the rest of a line a document ended in, read already
		midLine  bool   // the next read continues a line a document ended in
	)
	for {
		var line []byte
		var err error
		if carry != nil {
			line, carry = carry, nil
		} else {
			line, err = readLine(br, &long)
			if errors.Is(err, errLineTooLong) {
				return &ParseError{Name: name, Line: lineNo + 1, Msg: fmt.Sprintf("line longer than %d KiB: not malloc_info", maxLineBytes>>10), Err: ErrMalformed}
			}
			if len(line) > 0 && !midLine {
				lineNo++
			}
			midLine = false
			if err != nil && err != io.EOF {
				return &ParseError{Name: name, Line: lineNo, Msg: "read failed: " + err.Error(), Err: err}
			}
		}
		i := bytes.Index(line, []byte("<malloc"))
		if i < 0 || !isMallocStart(line[i+len("<malloc"):]) {
			if t := strings.TrimSpace(string(line)); t != "" {
				lastText = t
			}
		} else {
			prefix := strings.TrimSpace(string(line[:i]))
			label = lastText
			if prefix != "" {
				label = prefix
			}
			// The document's first line is in br's buffer, which reading on
			// reuses: the reader keeps a copy.
			d := &docReader{pending: bytes.Clone(line[i:]), br: br, lineLen: i}
			info, perr := parseDocument(d, name, lineNo)
			switch {
			case d.err != nil:
				return &ParseError{Name: name, Line: lineNo + d.newlines, Msg: d.err.Error(), Err: ErrMalformed}
			case d.eof:
				return &ParseError{Name: name, Line: lineNo, Msg: fmt.Sprintf("<malloc> document starting here is not closed by line %d: truncated", lineNo+d.newlines), Err: ErrTruncated}
			case perr != nil:
				return perr
			}
			info.Label = trimLabel(label)
			found++
			if err := fn(info); err != nil {
				return err
			}
			lastText = ""
			lineNo += d.newlines
			if d.pos < len(d.pending) {
				carry = d.pending[d.pos:]
			} else {
				midLine = true
			}
			continue
		}
		if err == io.EOF {
			break
		}
	}
	if found == 0 {
		return &ParseError{Name: name, Msg: "no <malloc> document found", Err: ErrNoDocument}
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns the next line with its newline, gathering one longer
// than br's buffer into *long, up to maxLineBytes.
func readLine(br *bufio.Reader, long *[]byte) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	*long = append((*long)[:0], line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = br.ReadSlice('\n')
		*long = append(*long, line...)
		if len(*long) > maxLineBytes {
			return nil, errLineTooLong
		}
	}
	return *long, err
}

// docReader hands the XML decoder one document byte by byte — the decoder
// reads an io.ByteReader without buffering ahead — from its first line's
// copy, then from the input, and ends it after "</malloc>", leaving the
// rest of that line unread. It bounds the document's lines and size.
type docReader struct {
	pending []byte // the document's first line from "<malloc"
	pos     int    // next byte of pending
	br      *bufio.Reader
	matched int  // bytes of "</malloc>" just read
	ended   bool // "</malloc>" read: the document is whole
	eof     bool // the input ended first: the document is truncated

	newlines, lineLen, size int
	err                     error // a bound crossed
}

var endTag = []byte("</malloc>")

func (d *docReader) ReadByte() (byte, error) {
	if d.ended || d.eof || d.err != nil {
		if d.err != nil {
			return 0, d.err
		}
		return 0, io.EOF
	}
	var c byte
	if d.pos < len(d.pending) {
		c = d.pending[d.pos]
		d.pos++
	} else {
		var err error
		if c, err = d.br.ReadByte(); err != nil {
			if err == io.EOF {
				d.eof = true
			} else {
				d.err = fmt.Errorf("read failed: %w", err)
			}
			return 0, err
		}
	}
	d.size++
	if c == '\n' {
		d.newlines++
		d.lineLen = 0
	} else if d.lineLen++; d.lineLen > maxLineBytes {
		d.err = fmt.Errorf("line longer than %d KiB: not malloc_info", maxLineBytes>>10)
		return 0, d.err
	}
	if d.size > maxDocumentBytes {
		d.err = fmt.Errorf("document larger than %d MiB: not malloc_info", maxDocumentBytes>>20)
		return 0, d.err
	}
	switch {
	case c == endTag[d.matched]:
		if d.matched++; d.matched == len(endTag) {
			d.ended = true
		}
	case c == '<':
		d.matched = 1
	default:
		d.matched = 0
	}
	return c, nil
}

// Read serves the decoder should it want a plain io.Reader.
func (d *docReader) Read(p []byte) (int, error) {
	for i := range p {
		c, err := d.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = c
	}
	return len(p), nil
}

// isMallocStart tells "<malloc version=…>" and "<malloc>" from "<malloc_info…".
func isMallocStart(after []byte) bool {
	return len(after) == 0 || after[0] == ' ' || after[0] == '>' || after[0] == '\t' || after[0] == '\n' || after[0] == '\r'
}

// clip shortens a name or value from the input for a message: a message
// quotes what it found, not a megabyte of it.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

func trimLabel(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}

// parseDocument decodes one <malloc>…</malloc> from r; startLine is its
// first line in the input, for error positions.
func parseDocument(r io.Reader, name string, startLine int) (*Info, error) {
	d := xml.NewDecoder(r)
	info := &Info{Line: startLine}
	fail := func(format string, args ...any) error {
		line, _ := d.InputPos()
		for i, a := range args {
			if s, ok := a.(string); ok {
				args[i] = clip(s)
			}
		}
		return &ParseError{Name: name, Line: startLine + line - 1, Msg: fmt.Sprintf(format, args...), Err: ErrMalformed}
	}
	var (
		path    []string // open elements
		arena   *Arena
		unknown = map[string]bool{}
		// Past maxUnknown names, more are only counted as "more".
		moreUnknown bool
	)
	noteUnknown := func(key string) {
		key = trimLabel(key)
		if len(unknown) < maxUnknown || unknown[key] {
			unknown[key] = true
		} else {
			moreUnknown = true
		}
	}
	for {
		// RawToken skips namespace handling, a third of Token's cost; the
		// nesting check it also skips is done below.
		tok, err := d.RawToken()
		if err == io.EOF {
			if len(path) > 0 {
				return nil, fail("XML: <%s> is not closed", path[len(path)-1])
			}
			break
		}
		if err != nil {
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				return nil, &ParseError{Name: name, Line: startLine + se.Line - 1, Msg: "XML: " + trimLabel(se.Msg), Err: ErrMalformed}
			}
			return nil, fail("XML: %v", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			parent := ""
			if len(path) > 0 {
				parent = path[len(path)-1]
			}
			el := t.Name.Local
			if len(path) == maxDepth {
				return nil, fail("<%s> nests %d elements deep: malloc_info nests 4 deep", el, len(path)+1)
			}
			path = append(path, el)
			a := attrs(t.Attr)
			typ, _ := a.get("type")
			// Where the element sits decides what it means: in an arena's
			// <heap>, or directly in <malloc> for the process totals.
			inArena := parent == "heap" && arena != nil && len(path) == 3
			atTop := parent == "malloc" && len(path) == 2
			switch {
			case el == "malloc" && parent == "":
				info.Version, _ = a.get("version")
				if info.Version != "1" {
					info.Warnings = append(info.Warnings, fmt.Sprintf("malloc_info version %q: this reader knows version 1; figures may be misread", clip(info.Version)))
				}
			case parent == "":
				return nil, fail("expected <malloc>, got <%s>", el)
			case el == "heap" && parent == "malloc" && len(path) == 2:
				nrText, _ := a.get("nr")
				nr, err := strconv.Atoi(nrText)
				if err != nil {
					return nil, fail("<heap> nr %q is not a number", nrText)
				}
				info.Arenas = append(info.Arenas, Arena{Nr: nr})
				arena = &info.Arenas[len(info.Arenas)-1]
			case (el == "size" || el == "unsorted") && parent == "sizes" && arena != nil && len(path) == 4:
				bin, err := parseBin(a)
				if err != nil {
					return nil, fail("<%s>: %v", el, err)
				}
				if el == "unsorted" {
					arena.Unsorted = &bin
				} else {
					arena.Bins = append(arena.Bins, bin)
				}
			case el == "sizes" && inArena:
			case el == "total" && (inArena || atTop):
				count, err1 := num(a, "count")
				size, err2 := num(a, "size")
				if err := errors.Join(err1, err2); err != nil {
					return nil, fail("<total type=%q>: %v", typ, err)
				}
				tot := Total{Count: count, Size: size}
				var dst *Total
				switch {
				case inArena && typ == "fast":
					dst = &arena.Fast
				case inArena && typ == "rest":
					dst = &arena.Rest
				case atTop && typ == "fast":
					dst = &info.Fast
				case atTop && typ == "rest":
					dst = &info.Rest
				case atTop && typ == "mmap":
					dst = &info.Mmap
				default:
					noteUnknown(fmt.Sprintf("<total type=%q> in <%s>", typ, parent))
					continue
				}
				*dst = tot
			case (el == "system" || el == "aspace") && (inArena || atTop):
				size, err := num(a, "size")
				if err != nil {
					return nil, fail("<%s type=%q>: %v", el, typ, err)
				}
				sizes := &info.SystemSizes
				if inArena {
					sizes = &arena.SystemSizes
				}
				switch key := el + "/" + typ; {
				case key == "system/current":
					sizes.SystemCurrent = size
				case key == "system/max":
					sizes.SystemMax = size
				case key == "aspace/total":
					sizes.AspaceTotal = size
				case key == "aspace/mprotect":
					sizes.AspaceMprotect = size
				case key == "aspace/subheaps" && inArena:
					arena.Subheaps, arena.HasSubheaps = size, true
				default:
					noteUnknown(fmt.Sprintf("<%s type=%q>", el, typ))
				}
			default:
				noteUnknown("<" + el + "> in <" + parent + ">")
			}
		case xml.EndElement:
			if len(path) == 0 || path[len(path)-1] != t.Name.Local {
				open := "nothing"
				if len(path) > 0 {
					open = "<" + path[len(path)-1] + ">"
				}
				return nil, fail("XML: %s closed by </%s>", open, t.Name.Local)
			}
			if len(path) > 0 {
				if path[len(path)-1] == "heap" {
					arena = nil
				}
				path = path[:len(path)-1]
			}
		}
	}
	if info.Version == "" && len(info.Arenas) == 0 {
		return nil, fail("no <malloc> element")
	}
	for u := range unknown {
		info.Warnings = append(info.Warnings, "ignored unknown element "+u)
	}
	if moreUnknown {
		info.Warnings = append(info.Warnings, fmt.Sprintf("ignored more unknown elements than the %d listed", maxUnknown))
	}
	sort.Strings(info.Warnings)
	return info, nil
}

// attrs looks attributes up by name; elements have at most four, so a
// scan beats building a map for each.
type attrs []xml.Attr

func (as attrs) get(key string) (string, bool) {
	for _, a := range as {
		if a.Name.Local == key {
			return a.Value, true
		}
	}
	return "", false
}

func num(a attrs, key string) (uint64, error) {
	s, ok := a.get(key)
	if !ok {
		return 0, fmt.Errorf("attribute %s missing", key)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s=%q is not a byte count", key, clip(s))
	}
	return v, nil
}

func parseBin(a attrs) (Bin, error) {
	var b Bin
	var errs []error
	var err error
	b.From, err = num(a, "from")
	errs = append(errs, err)
	b.To, err = num(a, "to")
	errs = append(errs, err)
	b.Total, err = num(a, "total")
	errs = append(errs, err)
	b.Count, err = num(a, "count")
	errs = append(errs, err)
	return b, errors.Join(errs...)
}
