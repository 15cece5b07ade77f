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
	"errors"
	"fmt"
	"io"
	"runtime"

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
// Count of them, Total bytes — as malloc_info printed them (see Bytes).
type Bin struct {
	From, To, Total, Count uint64
}

// Fast tells a fast bin's entry, which glibc prints as the bin's size
// range (from = size − 15, to = size), from a regular bin's, whose from and
// to are sizes of chunks it holds: both odd, see Bytes.
func (b Bin) Fast() bool { return (b.To-b.From)%2 == 1 }

// Bytes is the bin's free bytes. For a regular bin (and the unsorted one)
// malloc_info adds up the chunks' size fields as stored, each with its
// PREV_INUSE bit — a chunk in a bin always has it, or it would have merged
// with the chunk below — so Total is Count bytes too many; mallinfo2 and
// this figure leave the bit out. Rest.Size has the same excess, one byte
// per chunk in the arena's bins.
func (b Bin) Bytes() uint64 {
	if b.Fast() {
		return b.Total
	}
	return b.Total - min(b.Count, b.Total)
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
	err := scanSequential(r, name, func(info *Info) error {
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
// between other lines. A document is decoded as it is read: memory holds a
// few documents' figures, never the whole text. fn's error stops the scan
// and is returned. A log of many documents is decoded on every core (see
// scanParallel); fn is always called in order, on the caller's goroutine.
func Scan(r io.Reader, name string, fn func(*Info) error) error {
	if runtime.GOMAXPROCS(0) > 1 {
		return scanParallel(r, name, func(i *Info) *Info { return i }, fn, chunkBytes, bigDocument)
	}
	return scanSequential(r, name, fn)
}

// ScanSnapshots is Scan with each document analysed (Analyze), on the
// cores that decode it.
func ScanSnapshots(r io.Reader, name string, fn func(*Snapshot) error) error {
	if runtime.GOMAXPROCS(0) > 1 {
		return scanParallel(r, name, Analyze, fn, chunkBytes, bigDocument)
	}
	return scanSequential(r, name, func(i *Info) error { return fn(Analyze(i)) })
}

func scanSequential(r io.Reader, name string, fn func(*Info) error) error {
	sc := newScanner(name, 0, nil)
	if err := sc.scan(bufio.NewReaderSize(r, 64<<10), fn); err != nil {
		return err
	}
	return sc.noneFound()
}

// scanner is the sequential reader of a log: where it is, and the label
// the next document would get.
type scanner struct {
	name     string
	lineNo   int    // lines read
	lastText []byte // the last non-blank line outside documents
	found    int
	long     []byte
	p        *docParser
}

func newScanner(name string, lineNo int, lastText []byte) *scanner {
	return &scanner{name: name, lineNo: lineNo, lastText: lastText, p: newDocParser(name)}
}

func (sc *scanner) noneFound() error {
	if sc.found == 0 {
		return &ParseError{Name: sc.name, Msg: "no <malloc> document found", Err: ErrNoDocument}
	}
	return nil
}

// scan reads br to its end, calling fn with each document.
func (sc *scanner) scan(br *bufio.Reader, fn func(*Info) error) error {
	name := sc.name
	var carry []byte // the rest of a line a document ended in
	// next returns the next line; a carried rest continues its line and
	// does not count as a new one.
	next := func() ([]byte, error) {
		if carry != nil {
			line := carry
			carry = nil
			return line, nil
		}
		line, err := readLine(br, &sc.long)
		if errors.Is(err, errLineTooLong) {
			return nil, &ParseError{Name: name, Line: sc.lineNo + 1, Msg: fmt.Sprintf("line longer than %d KiB: not malloc_info", maxLineBytes>>10), Err: ErrMalformed}
		}
		if len(line) > 0 {
			sc.lineNo++
		}
		if err != nil && err != io.EOF {
			return nil, &ParseError{Name: name, Line: sc.lineNo, Msg: "read failed: " + err.Error(), Err: err}
		}
		return line, err
	}
	p := sc.p
	for {
		line, err := next()
		if err != nil && err != io.EOF {
			return err
		}
		i := bytes.Index(line, mallocTag)
		if i < 0 || !isMallocStart(line[i+len(mallocTag):]) {
			if t := bytes.TrimSpace(line); len(t) > 0 {
				sc.lastText = append(sc.lastText[:0], t...)
			}
			if err == io.EOF {
				return nil
			}
			continue
		}
		label := string(sc.lastText)
		if prefix := bytes.TrimSpace(line[:i]); len(prefix) > 0 {
			label = string(prefix)
		}
		start := sc.lineNo
		p.reset(start)
		rest, perr := p.feed(line[i:], sc.lineNo)
		for perr == nil && !p.done {
			if err == io.EOF {
				return &ParseError{Name: name, Line: start, Msg: fmt.Sprintf("<malloc> document starting here is not closed by line %d: truncated", sc.lineNo), Err: ErrTruncated}
			}
			if line, err = next(); err != nil && err != io.EOF {
				return err
			}
			rest, perr = p.feed(line, sc.lineNo)
		}
		if perr != nil {
			return perr
		}
		info, perr := p.finish()
		if perr != nil {
			return perr
		}
		info.Label = trimLabel(label)
		sc.found++
		if err := fn(info); err != nil {
			return err
		}
		sc.lastText = sc.lastText[:0]
		if len(rest) > 0 {
			carry = rest
		} else if err == io.EOF {
			return nil
		}
	}
}

var mallocTag = []byte("<malloc")

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

// isMallocStart tells "<malloc version=…>" and "<malloc>" from "<malloc_info…".
func isMallocStart(after []byte) bool {
	return len(after) == 0 || after[0] == ' ' || after[0] == '>' || after[0] == '\t' || after[0] == '\n' || after[0] == '\r'
}

func trimLabel(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
