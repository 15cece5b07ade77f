package collect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/memdiag/memdiag/explain"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
)

// WatchRequest is what `memdiag watch` samples, and how often.
type WatchRequest struct {
	Request
	Interval time.Duration
	Count    int // 0: until ctx ends
	// Warn is told, after the first sample, of the sources that failed.
	Warn func(failed []string)
}

// Watch samples r's process every Interval, handing each sample to each,
// until Count samples, ctx ends, the process exits or is no longer
// itself. It returns the watch (nil with no sample) and why it ended,
// for its summary.
func Watch(ctx context.Context, r *WatchRequest, each func(*explain.WatchSample) error) (w *explain.Watch, why string, err error) {
	w = &explain.Watch{}
	exited := false
	ended := "" // why the watch ended, when its target is no longer itself
	procDir := r.Proc.Dir(r.PID)
	id, err := proc.ReadIdentity(procDir)
	if err != nil {
		return nil, "", fmt.Errorf("process %d: %w", r.PID, pmap.ErrNoProcess)
	}
	tick := time.NewTicker(r.Interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		// Before any read or capture, and again after: a pid reused, or a
		// program exec'd (a setuid one), is another process, and memdiag
		// running as root must neither attach to it nor report its growth
		// as the first one's.
		if ended = targetChanged(id, procDir, r.PID); ended != "" {
			break
		}
		in, failed, err := Inputs(ctx, &r.Request)
		if ended = targetChanged(id, procDir, r.PID); ended != "" {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if w.Last() != nil && processGone(err) {
				// The end of what there was to watch, not a failure.
				exited = true
				break
			}
			return nil, "", err
		}
		if n == 1 && r.Warn != nil {
			r.Warn(failed)
		}
		if err := each(w.Add(in, time.Now())); err != nil {
			return nil, "", err
		}
		if r.Count > 0 && n >= r.Count || !wait(ctx, tick) {
			break
		}
	}
	switch {
	case w.Last() == nil && ended != "":
		return nil, "", fmt.Errorf("%s: %w", ended, pmap.ErrNoProcess)
	case w.Last() == nil:
		return nil, "", nil
	case ended != "":
		return w, ended + "; the watch ended", nil
	case exited:
		return w, fmt.Sprintf("process %d exited", r.PID), nil
	}
	return w, "stopped", nil
}

// wait waits for the next tick: false when ctx ends first.
func wait(ctx context.Context, tick *time.Ticker) bool {
	select {
	case <-ctx.Done():
		return false
	case <-tick.C:
		return true
	}
}

// targetChanged says why the process in procDir is no longer the one
// whose identity is was: "" while it is. A process gone is left to
// Inputs to find, as before.
func targetChanged(was proc.Identity, procDir string, pid int) string {
	now, err := proc.ReadIdentity(procDir)
	if err != nil {
		return ""
	}
	return was.Changed(pid, now)
}

// processGone reports whether err says the watched process is no more.
func processGone(err error) bool {
	return errors.Is(err, pmap.ErrNoProcess) || errors.Is(err, pmap.ErrExited) || errors.Is(err, pmap.ErrNoAddressSpace)
}
