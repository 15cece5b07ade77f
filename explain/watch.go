package explain

import (
	"time"

	"github.com/memdiag/memdiag/finding"
)

// Watch follows one process's attribution over samples: each category's
// bytes, its change since the first sample, and that change per minute —
// which part of RSS is growing.
type Watch struct {
	first           *Result
	start           time.Time
	firstIn, lastIn *Snapshot
	last            *WatchSample
	samples         int
}

// WatchSample is one sample of a Watch.
type WatchSample struct {
	// N counts samples from 1.
	N        int
	Time     time.Time
	Elapsed  time.Duration
	RSSBytes uint64
	// RSSDeltaBytes and RSSBytesPerMinute are RSS's change since the first
	// sample, and that per minute (0 at the first).
	RSSDeltaBytes     int64
	RSSBytesPerMinute float64
	// Categories are those measured, in the attribution's order.
	Categories []CategoryChange
	// Lead is the sample's first finding, as explain ranks them; nil
	// when there is none.
	Lead *finding.Finding
}

// CategoryChange is one category in a WatchSample.
type CategoryChange struct {
	Category Category
	Bytes    uint64
	// DeltaBytes is the change since the first sample.
	DeltaBytes int64
	// BytesPerMinute is DeltaBytes per minute of Elapsed (0 at the first
	// sample).
	BytesPerMinute float64
}

// Add attributes in, taken at now, and returns the sample it makes.
func (w *Watch) Add(in *Inputs, now time.Time) *WatchSample {
	r := Attribute(in)
	if w.first == nil {
		w.first, w.start = r, now
		w.firstIn = &Snapshot{Taken: now, Inputs: *in}
	}
	w.lastIn = &Snapshot{Taken: now, Inputs: *in}
	w.samples++
	s := &WatchSample{N: w.samples, Time: now, Elapsed: now.Sub(w.start), RSSBytes: r.RSSBytes, Categories: []CategoryChange{}}
	if len(r.Findings) > 0 {
		f := r.Findings[0]
		s.Lead = &f
	}
	minutes := s.Elapsed.Minutes()
	s.RSSDeltaBytes = int64(r.RSSBytes) - int64(w.first.RSSBytes)
	if minutes > 0 {
		s.RSSBytesPerMinute = float64(s.RSSDeltaBytes) / minutes
	}
	for _, e := range r.Attribution {
		c := CategoryChange{Category: e.Category, Bytes: e.Bytes, DeltaBytes: int64(e.Bytes) - int64(w.first.Bytes(e.Category))}
		if minutes > 0 {
			c.BytesPerMinute = float64(c.DeltaBytes) / minutes
		}
		s.Categories = append(s.Categories, c)
	}
	w.last = s
	return s
}

// Last is the latest sample, nil before the first.
func (w *Watch) Last() *WatchSample { return w.last }

// FirstRSSBytes is the RSS at the first sample.
func (w *Watch) FirstRSSBytes() uint64 {
	if w.first == nil {
		return 0
	}
	return w.first.RSSBytes
}

// Snapshots are the first and the latest sample's inputs (the JVM's heap
// outlook compares them); nil before the first sample.
func (w *Watch) Snapshots() (first, last *Snapshot) { return w.firstIn, w.lastIn }

// Command is the watched process's command name, from its first sample
// ("" before one).
func (w *Watch) Command() string {
	if w.firstIn == nil {
		return ""
	}
	return w.firstIn.Inputs.Command
}

// GrewMost is the category that grew most since the first sample, nil
// when none grew.
func (s *WatchSample) GrewMost() *CategoryChange {
	var top *CategoryChange
	for i := range s.Categories {
		if c := &s.Categories[i]; c.DeltaBytes > 0 && (top == nil || c.DeltaBytes > top.DeltaBytes) {
			top = c
		}
	}
	return top
}
