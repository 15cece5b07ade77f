package collect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/mallocinfo"
	"github.com/memdiag/memdiag/report"
)

// AllocatorRequest is what `memdiag mallocinfo` reads: a file (File "-"
// is In), or the live process PID.
type AllocatorRequest struct {
	Proc proc.FS // the proc filesystem (the zero value: /proc)
	File string
	In   io.Reader
	PID  int
	// UseGDB and NoStop choose how glibc's malloc_info is captured: see
	// mallocinfo.Capturer.
	UseGDB, NoStop bool
	Timeout        time.Duration
	// Save, with PID, keeps the captured document as the process wrote it.
	Save   string
	Notify func(string)
}

// ErrSaveNotGlibc says --save was asked of a process whose allocator
// writes no document to keep.
var ErrSaveNotGlibc = errors.New("--save keeps glibc's malloc_info document")

// AllocatorReading is the allocator's statistics, opened: jemalloc's or
// tcmalloc's whole in Other, else glibc's malloc_info documents, read by
// Scan. Close closes the file.
type AllocatorReading struct {
	Other  *allocator.Stats
	Source string
	PID    int
	r      AllocatorRequest
	rest   io.Reader // glibc's malloc_info, sniffed from File
	Close  func() error
}

// OpenAllocator opens r's file and sniffs it, or detects the live
// process's allocator and, for jemalloc and tcmalloc, asks it.
func OpenAllocator(ctx context.Context, r AllocatorRequest) (*AllocatorReading, error) {
	a := &AllocatorReading{r: r, PID: r.PID, Source: r.File, Close: func() error { return nil }}
	if r.PID == 0 {
		var err error
		if a.Other, a.rest, a.Close, err = OpenAllocatorStats(r.File, r.In); err != nil {
			return nil, err
		}
		return a, nil
	}
	d, err := allocator.Detect(r.Proc, r.PID)
	if err != nil {
		return nil, err
	}
	if d.Kind != allocator.Jemalloc && d.Kind != allocator.Tcmalloc {
		a.Source = a.capturer().Source(r.PID)
		return a, nil
	}
	if r.Save != "" {
		return nil, fmt.Errorf("%w; process %d uses %s, whose statistics memdiag reads value by value (for a file: MALLOC_CONF=stats_print:true for jemalloc, MALLOCSTATS=1 for tcmalloc, printed at exit)", ErrSaveNotGlibc, r.PID, d.Kind)
	}
	if a.Other, err = LiveAllocator(r.Proc, r.Timeout, r.Notify).Capture(ctx, r.PID, d); err != nil {
		return nil, err
	}
	return a, nil
}

// capturer is how a live glibc is captured.
func (a *AllocatorReading) capturer() mallocinfo.Capturer {
	r := a.r
	return mallocinfo.Capturer{UseGDB: r.UseGDB, NoStop: r.NoStop, Proc: r.Proc, Timeout: r.Timeout, Notify: r.Notify}
}

// Scan reads glibc's documents in order (a live capture is one), hands
// each analysed snapshot to add as it is read, so that memory holds one
// document and the series however long the log, and fills v: the last
// snapshot, the series, the findings under th.
func (a *AllocatorReading) Scan(ctx context.Context, v *report.MallocInfoView, th mallocinfo.Thresholds, add func(*mallocinfo.Snapshot) error) error {
	series := mallocinfo.NewSeries()
	each := func(s *mallocinfo.Snapshot) error {
		v.Last = s
		v.Snapshots++
		series.Add(s)
		return add(s)
	}
	if a.PID != 0 {
		if err := a.captureOne(ctx, each); err != nil {
			return err
		}
	} else if err := mallocinfo.ScanSnapshots(a.rest, a.Source, each); err != nil {
		return err
	}
	v.Findings = mallocinfo.Findings(v.Last, th, v.Source)
	if v.Snapshots > 1 {
		v.Series = series
		v.Findings = append(v.Findings, series.Findings(th, v.Source)...)
		finding.Sort(v.Findings)
	}
	return nil
}

// captureOne captures the live glibc's document, keeps it with Save, and
// analyses it.
func (a *AllocatorReading) captureOne(ctx context.Context, each func(*mallocinfo.Snapshot) error) error {
	doc, err := a.capturer().CaptureDocument(ctx, a.PID)
	if err != nil {
		return err
	}
	if a.r.Save != "" {
		// Kept before it is read: a document memdiag cannot parse is
		// the one worth keeping.
		if err := atomicfile.Write(a.r.Save, 0o644, func(w io.Writer) error { _, err := w.Write(doc); return err }); err != nil {
			return fmt.Errorf("saving the document to %s: %w", a.r.Save, err)
		}
	}
	info, err := mallocinfo.Parse(bytes.NewReader(doc), a.Source)
	if err != nil {
		return err
	}
	return each(mallocinfo.Analyze(info))
}
