package mallocinfo

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
)

// A log of many documents is decoded on every core. One goroutine reads
// lines and cuts the input into chunks of about chunkBytes, each starting
// on a line where a document starts; workers decode the chunks with the
// sequential scanner; the caller's goroutine takes them in order.
//
// Where a document ends is guessed cheaply, by the first "</malloc>" after
// its start. A guess can be wrong only on input that is not what glibc
// writes ("</malloc>" in a comment, a self-closing root); so each chunk's
// decoder reports the state it ended in — line number, pending label,
// whether a document was still open — and the next chunk is accepted only
// if it started from that very state. Otherwise it is decoded again from
// the right state, or, if a document was left open, the rest of the input
// is decoded sequentially from that chunk on. The result is the sequential
// scanner's, byte for byte, on any input.
const (
	chunkBytes = 256 << 10
	// bigDocument: a document this large is not worth a chunk; the rest
	// of the input is decoded sequentially, as it streams.
	bigDocument = 4 << 20
)

// chunk is a run of whole lines and what decoding it gave: each
// document, and what prepare made of it on the worker.
type chunk[T any] struct {
	data      []byte
	startLine int    // lines before the chunk
	lastText  []byte // the label pending where the chunk starts
	err       error  // a read error after the chunk's data (no decoding)
	raw       bool   // not decoded: past the switch to sequential decoding

	done   chan struct{}
	docs   []T
	outErr error
	open   bool // a document was still open at the chunk's end
	exit   scanState
}

type scanState struct {
	lineNo   int
	lastText []byte
}

func (st scanState) equal(o scanState) bool {
	return st.lineNo == o.lineNo && bytes.Equal(st.lastText, o.lastText)
}

// decode runs the sequential scanner on c from state in.
func (c *chunk[T]) decode(name string, in scanState, prepare func(*Info) T) {
	sc := newScanner(name, in.lineNo, bytes.Clone(in.lastText))
	c.docs = c.docs[:0]
	err := sc.scan(bufio.NewReaderSize(bytes.NewReader(c.data), 64<<10), func(i *Info) error {
		c.docs = append(c.docs, prepare(i))
		return nil
	})
	c.open = errors.Is(err, ErrTruncated)
	if !c.open {
		c.outErr = err
	}
	c.exit = scanState{sc.lineNo, sc.lastText}
}

// scanParallel is Scan on every core, cutting chunks of about size bytes
// and going sequential at documents of more than big.
func scanParallel[T any](r io.Reader, name string, prepare func(*Info) T, fn func(T) error, size, big int) error {
	quit := make(chan struct{})
	defer close(quit)
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *chunk[T], workers)
	ordered := make(chan *chunk[T], 2*workers)
	pool := newBufferPool(3*workers + 2)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range work {
				c.decode(name, scanState{c.startLine, c.lastText}, prepare)
				close(c.done)
			}
		}()
	}
	go func() {
		defer wg.Wait()
		defer close(work)
		defer close(ordered)
		cutChunks(r, size, big, pool, func(c *chunk[T]) bool {
			c.done = make(chan struct{})
			if c.raw || c.err != nil {
				close(c.done)
			} else {
				select {
				case work <- c:
				case <-quit:
					return false
				}
			}
			select {
			case ordered <- c:
				return true
			case <-quit:
				return false
			}
		})
	}()

	state := scanState{}
	found := 0
	for c := range ordered {
		<-c.done
		if c.raw {
			return sequentialFrom(c, ordered, name, state, found, prepare, fn)
		}
		if c.err != nil {
			return sequentialFrom(c, ordered, name, state, found, prepare, fn)
		}
		if !state.equal(scanState{c.startLine, c.lastText}) {
			c.decode(name, state, prepare) // the guess was wrong: decode from the right state
		}
		if c.open {
			return sequentialFrom(c, ordered, name, state, found, prepare, fn)
		}
		for _, d := range c.docs {
			found++
			if err := fn(d); err != nil {
				return err
			}
		}
		if c.outErr != nil {
			return c.outErr
		}
		state = c.exit
		pool.put(c.data)
	}
	if found == 0 {
		return &ParseError{Name: name, Msg: "no <malloc> document found", Err: ErrNoDocument}
	}
	return nil
}

// sequentialFrom decodes the rest of the input — chunk c and every chunk
// after it — with one scanner, from state in.
func sequentialFrom[T any](c *chunk[T], ordered <-chan *chunk[T], name string, in scanState, found int, prepare func(*Info) T, fn func(T) error) error {
	sc := newScanner(name, in.lineNo, bytes.Clone(in.lastText))
	sc.found = found
	rest := &chunkReader[T]{cur: c, next: ordered}
	err := sc.scan(bufio.NewReaderSize(rest, 64<<10), func(i *Info) error { return fn(prepare(i)) })
	if err != nil {
		return err
	}
	return sc.noneFound()
}

// chunkReader reads the data of chunks in order, then their read error.
type chunkReader[T any] struct {
	cur  *chunk[T]
	off  int
	next <-chan *chunk[T]
}

func (cr *chunkReader[T]) Read(p []byte) (int, error) {
	for {
		if cr.cur == nil {
			return 0, io.EOF
		}
		if cr.off < len(cr.cur.data) {
			n := copy(p, cr.cur.data[cr.off:])
			cr.off += n
			return n, nil
		}
		if cr.cur.err != nil {
			return 0, cr.cur.err
		}
		c, ok := <-cr.next
		if !ok {
			cr.cur = nil
			continue
		}
		<-c.done
		cr.cur, cr.off = c, 0
	}
}

// cutChunks reads r and hands emit chunks of whole lines, each but the
// first starting on a line outside any document by the guess — where a
// document starts, when the input has documents. It searches the blocks it
// reads for "<malloc", "</malloc>" and newlines, which the CPU does many
// bytes at a time, and never splits lines. Where it cannot cut — a document
// over big bytes, a line over maxLineBytes — the rest of the input goes out
// in raw chunks. emit returns false to stop.
func cutChunks[T any](r io.Reader, size, big int, pool *bufferPool, emit func(*chunk[T]) bool) {
	c := &cutter[T]{size: size, pool: pool, emit: emit, buf: pool.get(size)}
	var readErr error
	for {
		if !c.search() {
			return
		}
		if !c.inside && len(c.buf) >= size {
			// A full chunk with no document starting: cut at the last
			// line start.
			if ls := bytes.LastIndexByte(c.buf, '\n') + 1; ls >= c.textFrom && ls > size/2 {
				if !c.cut(ls) {
					return
				}
			}
		}
		if c.eof || readErr != nil {
			if len(c.buf) > 0 || readErr != nil {
				emit(&chunk[T]{data: c.buf, startLine: c.lines, lastText: c.entry, err: readErr})
			}
			return
		}
		if (c.inside && len(c.buf)-c.docAt > big) || len(c.buf) > size+maxLineBytes+big {
			rawRest(r, &chunk[T]{data: c.buf, startLine: c.lines, lastText: c.entry, raw: true}, emit)
			return
		}
		if cap(c.buf)-len(c.buf) < 32<<10 {
			c.buf = slices.Grow(c.buf, len(c.buf))
		}
		n, err := r.Read(c.buf[len(c.buf):cap(c.buf)])
		c.buf = c.buf[:len(c.buf)+n]
		switch {
		case err == io.EOF:
			c.eof = true
		case err != nil:
			readErr = err
		}
	}
}

// cutter is cutChunks' state between reads.
type cutter[T any] struct {
	size int
	pool *bufferPool
	emit func(*chunk[T]) bool

	buf      []byte
	pos      int    // next byte of buf to search
	inside   bool   // by the guess, in a document that started at docAt
	docAt    int    //
	textFrom int    // where the text after the last document ended starts in buf, or 0
	entry    []byte // the label pending at buf[0]
	pending  []byte // the label pending at buf[textFrom]
	lines    int    // lines before buf
	eof      bool
}

// cut emits buf[:at], which ends a line outside any document, and keeps
// the rest; it returns emit's answer.
func (c *cutter[T]) cut(at int) bool {
	ch := &chunk[T]{data: c.buf[:at], startLine: c.lines, lastText: c.entry}
	c.entry = labelBefore(c.buf[c.textFrom:at], c.pending)
	c.pending = c.entry
	c.lines += bytes.Count(c.buf[:at], newline)
	next := append(c.pool.get(c.size), c.buf[at:]...)
	c.buf, c.pos, c.textFrom = next, max(c.pos-at, 0), 0
	if c.inside {
		c.docAt -= at
	}
	return c.emit(ch)
}

// search follows documents' starts and ends through what is read, cutting
// before a document that starts past size; false when emit asked to stop.
func (c *cutter[T]) search() bool {
	for {
		if !c.inside {
			i := bytes.Index(c.buf[c.pos:], mallocTag)
			if i < 0 {
				c.pos = max(c.pos, len(c.buf)-len(mallocTag))
				return true
			}
			at := c.pos + i
			after := c.buf[at+len(mallocTag):]
			if len(after) == 0 && !c.eof {
				c.pos = at // "<malloc" ends what is read: read on
				return true
			}
			c.pos = at + len(mallocTag)
			if !isMallocStart(after) {
				continue
			}
			c.inside, c.docAt = true, at
			if ls := bytes.LastIndexByte(c.buf[:at], '\n') + 1; ls >= c.size && ls >= c.textFrom {
				if !c.cut(ls) {
					return false
				}
			}
			continue
		}
		j := bytes.Index(c.buf[c.pos:], endTag)
		if j < 0 {
			c.pos = max(c.pos, len(c.buf)-len(endTag))
			return true
		}
		c.pos += j + len(endTag)
		c.inside, c.textFrom, c.pending = false, c.pos, nil
	}
}

var newline = []byte{'\n'}

// labelBefore returns the label the scanner would have pending at the end
// of text: its last non-blank line, trimmed, or, if it has none, the label
// pending at its start.
func labelBefore(text, inherited []byte) []byte {
	for len(text) > 0 {
		i := bytes.LastIndexByte(text[:len(text)-1], '\n') + 1
		if t := bytes.TrimSpace(text[i:]); len(t) > 0 {
			return bytes.Clone(t)
		}
		text = text[:i]
	}
	return inherited
}

var endTag = []byte("</malloc>")

// rawRest emits c and the rest of r as raw chunks, for the sequential
// scanner.
func rawRest[T any](r io.Reader, c *chunk[T], emit func(*chunk[T]) bool) {
	for {
		b := make([]byte, 256<<10)
		n, err := io.ReadFull(r, b)
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			if n > 0 {
				if !emit(c) {
					return
				}
				c = &chunk[T]{data: b[:n], raw: true}
			}
			emit(c)
			return
		case err != nil:
			if !emit(c) {
				return
			}
			emit(&chunk[T]{data: b[:n], raw: true, err: err})
			return
		}
		if !emit(c) {
			return
		}
		c = &chunk[T]{data: b[:n], raw: true}
	}
}

// bufferPool recycles the buffers of chunks the scan is done with.
type bufferPool struct{ free chan []byte }

func newBufferPool(n int) *bufferPool { return &bufferPool{free: make(chan []byte, n)} }

// get returns an empty buffer of at least size + 64 KiB.
func (p *bufferPool) get(size int) []byte {
	select {
	case b := <-p.free:
		if cap(b) >= size+64<<10 {
			return b[:0]
		}
	default:
	}
	return make([]byte, 0, size+64<<10)
}

func (p *bufferPool) put(b []byte) {
	select {
	case p.free <- b:
	default:
	}
}
