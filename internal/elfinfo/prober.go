package elfinfo

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// MaxPending bounds the probes a Prober leaves hanging at once, whatever
// the processes: past it, no new probe starts until one returns.
const MaxPending = 16

// File is what a probe reads: an opened executable.
type File interface {
	io.ReaderAt
	io.Closer
}

// Prober tells Go executables apart with at most one probe outstanding
// per process (its pid and start time, or the path for another file) and
// MaxPending in all. A probe runs in a goroutine that the wait abandons,
// not ends: an open stuck on a stalled FUSE or NFS mount keeps its thread
// until it returns, so memdiag top --textfile, probing every cycle, left
// one more blocked thread per cycle and process.
type Prober struct {
	open    func(string) (File, error)
	mu      sync.Mutex
	pending map[string]bool
}

// NewProber returns a Prober that opens files with open (nil: os.Open).
func NewProber(open func(string) (File, error)) *Prober {
	if open == nil {
		open = func(path string) (File, error) { return os.Open(path) }
	}
	return &Prober{open: open, pending: map[string]bool{}}
}

// Pending is how many probes are still hanging.
func (p *Prober) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

// Check is CheckGoFile through p.
func (p *Prober) Check(path string, wait time.Duration) (bool, error) {
	key := probeKey(path)
	p.mu.Lock()
	switch {
	// ErrPending wraps ErrSlow too: a caller that refuses to go on with an
	// executable that does not answer (gdb would stall on it) refuses
	// this one as well.
	case p.pending[key]:
		p.mu.Unlock()
		return false, fmt.Errorf("%s: %w (%w)", path, ErrPending, ErrSlow)
	case len(p.pending) >= MaxPending:
		p.mu.Unlock()
		return false, fmt.Errorf("%s: %w (%d probes of other executables hang; %w)", path, ErrPending, MaxPending, ErrSlow)
	}
	p.pending[key] = true
	p.mu.Unlock()
	type result struct {
		isGo bool
		err  error
	}
	answer := make(chan result, 1)
	go func() {
		defer func() {
			p.mu.Lock()
			delete(p.pending, key)
			p.mu.Unlock()
		}()
		f, err := p.open(path)
		if err != nil {
			answer <- result{false, err}
			return
		}
		defer f.Close()
		answer <- result{IsGo(f), nil}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case r := <-answer:
		return r.isGo, r.err
	case <-t.C:
		return false, fmt.Errorf("%s: %w (%v)", path, ErrSlow, wait)
	}
}

// probeKey names the process a /proc/PID/exe belongs to by its pid and
// start time, so that a later process given the same pid is probed anew;
// another path stands for itself.
func probeKey(path string) string {
	if filepath.Base(path) != "exe" {
		return path
	}
	start, _, err := proc.StartTime(filepath.Dir(path))
	if err != nil {
		return path
	}
	return path + "@" + start
}
