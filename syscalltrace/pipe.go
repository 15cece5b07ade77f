package syscalltrace

import "io"

// Pipe reads r on its own goroutine, handing events over in batches, so
// that parsing and replaying run on two cores. Close stops the goroutine
// early; reading to io.EOF (or an error) stops it too.
type Pipe struct {
	batches chan pipeBatch
	free    chan []Event // batches the reader is done with
	cur     []Event
	last    []Event // the batch the previous event came from
	err     error
	done    chan struct{}
}

type pipeBatch struct {
	events []Event
	err    error
}

const (
	pipeBatchLen = 1024
	pipeDepth    = 8
)

// NewPipe starts reading r. Events are copied: r's may be valid only until
// its next call.
func NewPipe(r Reader) *Pipe {
	p := &Pipe{batches: make(chan pipeBatch, pipeDepth), free: make(chan []Event, pipeDepth+2), done: make(chan struct{})}
	go func() {
		defer close(p.batches)
		batch := make([]Event, 0, pipeBatchLen)
		for {
			e, err := r.Next()
			if err != nil {
				select {
				case p.batches <- pipeBatch{batch, err}:
				case <-p.done:
				}
				return
			}
			batch = append(batch, *e)
			if len(batch) == pipeBatchLen {
				select {
				case p.batches <- pipeBatch{events: batch}:
				case <-p.done:
					return
				}
				select {
				case batch = <-p.free:
					clear(batch)
					batch = batch[:0]
				default:
					batch = make([]Event, 0, pipeBatchLen)
				}
			}
		}
	}()
	return p
}

// Next returns the next event, or io.EOF. The event is valid until the
// following call.
func (p *Pipe) Next() (*Event, error) {
	for len(p.cur) == 0 {
		if p.err != nil {
			return nil, p.err
		}
		b, ok := <-p.batches
		if !ok {
			return nil, io.EOF
		}
		if p.last != nil {
			select {
			case p.free <- p.last[:0:cap(p.last)]:
			default:
			}
		}
		p.cur, p.last, p.err = b.events, b.events, b.err
	}
	e := &p.cur[0]
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
