package cmd

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/memdiag/memdiag/internal/termsafe"
	"github.com/memdiag/memdiag/report"
)

// progressMinBytes is the input size from which reading shows progress.
const progressMinBytes = 64 << 20

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

// progress reports on w, twice a second, how much of total bytes has been
// read; stop clears the line. It is for terminals only.
type progress struct {
	read  atomic.Int64
	total int64
	done  chan struct{}
	ended chan struct{}
}

func startProgress(w io.Writer, what string, total int64) *progress {
	what = termsafe.Escape(what) // a file name: anyone's
	p := &progress{total: total, done: make(chan struct{}), ended: make(chan struct{})}
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
				fmt.Fprintf(w, "\r\x1b[Kmemdiag: %s: %s of %s (%s), %s/s", what, report.Bytes(uint64(n)), report.Bytes(uint64(p.total)),
					report.Percent(uint64(n), uint64(p.total)), report.Bytes(uint64(rate)))
			}
		}
	}()
	return p
}

func (p *progress) wrap(r io.Reader) io.Reader { return countingReader{r: r, n: &p.read} }

func (p *progress) stop() {
	close(p.done)
	<-p.ended
}
