package syscalltrace

import (
	"bytes"
	"io"
	"sync"
)

// defaultChunkSize is how much of a trace one decoding step takes: large
// enough that handing chunks between goroutines costs nothing, small
// enough that the chunks in flight stay a few MiB.
const defaultChunkSize = 256 << 10

// maxCutShift bounds how far a chunk's end moves to keep a call with its
// "> " frame lines, or a line cut by attach noise with its end. Past it the
// chunk is cut anyway: stack lines beyond it are dropped, and the two parts
// of the line are counted as foreign.
const maxCutShift = 1 << 20

// straceChunk is a run of whole lines and what decoding them gave, in order.
type straceChunk struct {
	buf     []byte
	last    bool  // the input ends with this chunk
	readErr error // why it ended, when not io.EOF
	done    chan struct{}

	lines        int
	events       []Event
	recs         []straceRec
	splits       []splitCall
	foreign      int
	firstForeign int   // line in the chunk
	err          error // the first malformed line; recs stop before it
}

func (c *straceChunk) reset() {
	// Each event is zeroed as it is added (its frames are not reused:
	// mappings keep them).
	c.events, c.recs, c.splits = c.events[:0], c.recs[:0], c.splits[:0]
	c.lines, c.foreign, c.firstForeign, c.err = 0, 0, 0, nil
}

type recKind uint8

// What a chunk's records say, in input order.
const (
	recEvent      recKind = iota // events[ev] is a call or an exit
	recUnfinished                // splits[aux] is a call's first part
	recResumed                   // splits[aux] ends a call begun in an earlier chunk; events[ev] has its frames
	recPid                       // the first "[pid aux]" prefix in the chunk
	recAttached                  // "strace: Process aux attached"
)

type straceRec struct {
	kind recKind
	ev   int32
	aux  int
}

// splitCall is one part of a call strace split with <unfinished ...>.
type splitCall struct {
	tid     int
	name    string
	text    string // the arguments so far, or what follows "resumed>"; views the chunk
	whole   string // the line, for errors
	line    int
	time    float64
	hasTime bool
	joined  bool // its other part is in the same chunk
}

// splitter cuts an input into chunks of whole lines, never between a call
// and its "> " frame lines nor after a line cut by attach noise, so that
// every chunk decodes on its own.
type splitter struct {
	r     io.Reader
	size  int
	carry []byte // read past the last cut
	err   error  // the read error that ended the input (io.EOF at the end)
}

// fill puts the next run of lines into c.buf.
func (sp *splitter) fill(c *straceChunk) {
	buf := append(c.buf[:0], sp.carry...)
	buf = sp.read(buf, sp.size)
	cut := sp.cut(&buf)
	sp.carry = append(sp.carry[:0], buf[cut:]...)
	c.buf = buf[:cut]
	c.last = sp.err != nil && len(sp.carry) == 0
	c.readErr = nil
	if c.last && sp.err != io.EOF {
		c.readErr = sp.err
	}
}

// read reads into buf until it holds want bytes or the input ends. It
// reads little past want: what follows the cut is copied to the next chunk.
func (sp *splitter) read(buf []byte, want int) []byte {
	for empty := 0; len(buf) < want && sp.err == nil; {
		end := max(want, len(buf)+sp.ahead())
		if cap(buf) < end {
			buf = append(buf[:cap(buf)], make([]byte, end-cap(buf))...)[:len(buf)]
		}
		n, err := sp.r.Read(buf[len(buf):end])
		buf = buf[:len(buf)+n]
		switch {
		case err != nil:
			sp.err = err
		case n > 0:
			empty = 0
		default:
			if empty++; empty == 100 {
				sp.err = io.ErrNoProgress // as bufio says of a reader that returns nothing
			}
		}
	}
	return buf
}

// readAhead is what the splitter reads at least, once a chunk is full, to
// find its end.
const readAhead = 16 << 10

// ahead is readAhead for chunks of a sixteenth of it or more: what is read
// past a cut is copied to the next chunk, and small chunks (tests) would
// copy it over and over.
func (sp *splitter) ahead() int { return max(frameLookahead, min(readAhead, sp.size*16)) }

// frameLookahead is enough of a line's start to tell a "> " frame line.
const frameLookahead = 64

// cut returns where the chunk in *buf ends, reading more when the place
// needs it.
func (sp *splitter) cut(buf *[]byte) int {
	from := min(sp.size, len(*buf)) - 1
	from = max(from, 0)
	for {
		b := *buf
		i := bytes.IndexByte(b[from:], '\n')
		if i < 0 {
			if sp.err != nil || len(b) > sp.size+maxCutShift+maxLine {
				return len(b) // the last line, or one too long: the decoder says so
			}
			from = len(b) // no newline before: search only what comes
			*buf = sp.read(b, len(b)+sp.ahead())
			continue
		}
		p := from + i + 1
		if len(b) < p+frameLookahead && sp.err == nil {
			// Enough to see the next line's start.
			*buf = sp.read(b, p+frameLookahead)
			continue
		}
		if p > sp.size+maxCutShift || cleanCut(b, p) {
			return p
		}
		from = p
	}
}

// cleanCut reports whether the lines before and after p may go to different
// chunks.
func cleanCut(b []byte, p int) bool {
	prev := b[bytes.LastIndexByte(b[:p-1], '\n')+1 : p-1]
	if bytes.Contains(prev, attachedNoise) {
		return false
	}
	next := b[p:min(len(b), p+frameLookahead)]
	next = bytes.TrimLeft(next, " ")
	return !bytes.HasPrefix(next, []byte("> "))
}

// chunkSource yields decoded chunks in input order, nil at the end; a chunk
// is released once the reader is done with it.
type chunkSource interface {
	next() *straceChunk
	release(*straceChunk)
	close()
}

// sequentialSource decodes each chunk when it is asked for.
type sequentialSource struct {
	sp   *splitter
	dec  *straceDecoder
	c    straceChunk
	done bool
}

func (s *sequentialSource) next() *straceChunk {
	if s.done {
		return nil
	}
	s.sp.fill(&s.c)
	s.dec.decodeChunk(&s.c)
	s.done = s.c.last
	return &s.c
}

func (s *sequentialSource) release(*straceChunk) {}
func (s *sequentialSource) close()               { s.done = true }

// parallelSource splits on one goroutine and decodes on workers; chunks
// come back in order, and only so many are in flight.
type parallelSource struct {
	free    chan *straceChunk
	order   chan *straceChunk
	quit    chan struct{}
	stopped chan struct{} // closed when the splitter has returned
	once    sync.Once
}

func startParallel(sp *splitter, workers int, newDecoder func() *straceDecoder) *parallelSource {
	inflight := 2*workers + 2
	p := &parallelSource{free: make(chan *straceChunk, inflight), order: make(chan *straceChunk, inflight),
		quit: make(chan struct{}), stopped: make(chan struct{})}
	for range inflight {
		p.free <- &straceChunk{}
	}
	work := make(chan *straceChunk, inflight)
	go func() {
		defer close(p.stopped)
		defer close(p.order)
		defer close(work)
		for {
			var c *straceChunk
			select {
			case c = <-p.free:
			case <-p.quit:
				return
			}
			sp.fill(c)
			c.done = make(chan struct{})
			// Both have room for every chunk: neither send waits.
			work <- c
			p.order <- c
			if c.last {
				return
			}
		}
	}()
	for range workers {
		go func() {
			d := newDecoder()
			for c := range work {
				d.decodeChunk(c)
				close(c.done)
			}
		}()
	}
	return p
}

func (p *parallelSource) next() *straceChunk {
	c, ok := <-p.order
	if !ok {
		return nil
	}
	<-c.done
	return c
}

func (p *parallelSource) release(c *straceChunk) { p.free <- c }

// close stops the splitter and waits for the read it may be in: the input
// may be closed once it returns.
func (p *parallelSource) close() {
	p.once.Do(func() { close(p.quit) })
	<-p.stopped
}
