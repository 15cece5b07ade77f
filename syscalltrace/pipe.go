package syscalltrace

import "io"

// Pipe reads r on its own goroutine, handing events over in batches, so
// that parsing and replaying run on two cores. Close stops the goroutine
// early; reading to io.EOF (or an error) stops it too.
type Pipe struct {
	batches chan pipeBatch
	cur     []*Event
	err     error
	done    chan struct{}
}

type pipeBatch struct {
	events []*Event
	err    error
}

const pipeBatchLen = 1024

// NewPipe starts reading r.
func NewPipe(r Reader) *Pipe {
	p := &Pipe{batches: make(chan pipeBatch, 8), done: make(chan struct{})}
	go func() {
		defer close(p.batches)
		batch := make([]*Event, 0, pipeBatchLen)
		for {
			e, err := r.Next()
			if err != nil {
				select {
				case p.batches <- pipeBatch{batch, err}:
				case <-p.done:
				}
				return
			}
			batch = append(batch, e)
			if len(batch) == pipeBatchLen {
				select {
				case p.batches <- pipeBatch{events: batch}:
				case <-p.done:
					return
				}
				batch = make([]*Event, 0, pipeBatchLen)
			}
		}
	}()
	return p
}

// Next returns the next event, or io.EOF.
func (p *Pipe) Next() (*Event, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return nil, p.err
		}
		b, ok := <-p.batches
		if !ok {
			return nil, io.EOF
		}
		p.cur, p.err = b.events, b.err
	}
	e := p.cur[0]
	p.cur = p.cur[1:]
	return e, nil
}

// Close stops the reading goroutine.
func (p *Pipe) Close() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
}
