package pmap

import "io"

// prefetchReader reads its source on a second goroutine, one chunk ahead of
// the consumer. For /proc/<pid>/smaps the kernel's page-table walk is most of
// the cost; with the read ahead, parsing runs on the other core meanwhile and
// a live read costs little more than the kernel's part.
type prefetchReader struct {
	full  chan chunk
	empty chan []byte
	cur   []byte
	buf   []byte // cur's backing buffer, returned to empty once consumed
	err   error
}

type chunk struct {
	buf []byte
	n   int
	err error
}

const (
	prefetchChunkBytes = 256 << 10
	prefetchChunks     = 8
)

func newPrefetchReader(r io.Reader) *prefetchReader {
	p := &prefetchReader{
		full:  make(chan chunk, prefetchChunks),
		empty: make(chan []byte, prefetchChunks),
	}
	for i := 0; i < prefetchChunks; i++ {
		p.empty <- make([]byte, prefetchChunkBytes)
	}
	go func() {
		// At most prefetchChunks buffers exist, so sends to full never block.
		defer close(p.full)
		for buf := range p.empty {
			// A read of /proc/<pid>/smaps returns one kernel page at most;
			// fill the whole chunk so goroutine hand-offs stay rare.
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			p.full <- chunk{buf: buf, n: n, err: err}
			if err != nil {
				return
			}
		}
	}()
	return p
}

func (p *prefetchReader) Read(b []byte) (int, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if p.buf != nil {
			p.empty <- p.buf
			p.buf = nil
		}
		c, ok := <-p.full
		if !ok {
			return 0, p.err
		}
		p.buf, p.cur, p.err = c.buf, c.buf[:c.n], c.err
	}
	n := copy(b, p.cur)
	p.cur = p.cur[n:]
	return n, nil
}

// Close stops the read-ahead goroutine once it finishes its current read.
// The caller closes the source afterwards or concurrently.
func (p *prefetchReader) Close() {
	if p.err == nil {
		p.err = io.ErrClosedPipe
	}
	close(p.empty)
	// Drain so the goroutine's pending send cannot block forever.
	go func() {
		for range p.full {
		}
	}()
}
