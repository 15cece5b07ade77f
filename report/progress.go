package report

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/memdiag/memdiag/internal/termsafe"
)

// ProgressMinBytes is the input size from which reading shows progress.
const ProgressMinBytes = 64 << 20

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Progress reports on w, twice a second, how much of total bytes has
// been read; Stop clears the line. It is for terminals only.
type Progress struct {
	read  atomic.Int64
	total int64
	done  chan struct{}
	ended chan struct{}
}

// StartProgress shows the progress of reading what, total bytes, on w.
func StartProgress(w io.Writer, what string, total int64) *Progress {
	what = termsafe.Escape(what) // a file name: anyone's
	p := &Progress{total: total, done: make(chan struct{}), ended: make(chan struct{})}
	go func() {
		defer close(p.ended)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-p.done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
				n := p.read.Load()
				rate := float64(n) / time.Since(start).Seconds()
				fmt.Fprintf(w, "\r\x1b[Kmemdiag: %s: %s of %s (%s), %s/s", what, Bytes(uint64(n)), Bytes(uint64(p.total)),
					Percent(uint64(n), uint64(p.total)), Bytes(uint64(rate)))
			}
		}
	}()
	return p
}

// ProgressOf returns a collect.TraceRequest.Progress-shaped function:
// given the input's size, it shows progress on w from ProgressMinBytes on,
// and returns what counts the reading and what ends the display.
func ProgressOf(w io.Writer, what string) func(total int64) (func(io.Reader) io.Reader, func()) {
	return func(total int64) (func(io.Reader) io.Reader, func()) {
		if total < ProgressMinBytes {
			return nil, func() {}
		}
		p := StartProgress(w, what, total)
		return p.Wrap, p.Stop
	}
}

// Wrap counts what is read through r.
func (p *Progress) Wrap(r io.Reader) io.Reader { return countingReader{r: r, n: &p.read} }

// Stop clears the line.
func (p *Progress) Stop() {
	close(p.done)
	<-p.ended
}
