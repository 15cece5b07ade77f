package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/mallocinfo"
)

// allocator reads the allocator's statistics: a file (glibc's
// malloc_info, jemalloc's or tcmalloc's, sniffed), or a live capture of
// whichever allocator the process uses.
func (c *collection) allocator(ctx context.Context) error {
	r := c.r
	var info *mallocinfo.Info
	var other *allocator.Stats
	source := r.MallocInfoFile
	switch {
	case r.MallocInfoFile != "":
		var err error
		if other, info, err = allocatorFile(r.MallocInfoFile); err != nil {
			return err
		}
	case r.CaptureMallocInfo:
		other, info, source = c.captureAllocator(ctx)
	}
	if other != nil {
		c.in.FromAllocator(other, allocator.Findings(other))
	}
	if info != nil {
		s := mallocinfo.Analyze(info)
		fs := mallocinfo.Findings(s, mallocinfo.DefaultThresholds(r.cores()), source)
		c.in.FromMalloc(s, source, fs)
	}
	return nil
}

// allocatorFile reads saved statistics: jemalloc's or tcmalloc's, else
// glibc's malloc_info (of a log, the last document).
func allocatorFile(path string) (*allocator.Stats, *mallocinfo.Info, error) {
	s, rest, closeFile, err := OpenAllocatorStats(path, nil)
	if err != nil {
		return nil, nil, err
	}
	defer closeFile()
	if s != nil {
		return s, nil, nil
	}
	var info *mallocinfo.Info
	if err := mallocinfo.Scan(rest, path, func(i *mallocinfo.Info) error { info = i; return nil }); err != nil {
		return nil, nil, err
	}
	return nil, info, nil
}

// OpenAllocatorStats opens saved allocator statistics (path "-": stdin)
// and reads jemalloc's or tcmalloc's, sniffed by allocator.Parse. Anything
// else — glibc's malloc_info — is left to package mallocinfo: s is nil and
// rest is the opened, sniffed input to read on. closeFile closes the file.
func OpenAllocatorStats(path string, stdin io.Reader) (s *allocator.Stats, rest io.Reader, closeFile func() error, err error) {
	var r io.Reader = stdin
	closeFile = func() error { return nil }
	if path != "-" {
		f, err := input.Open(path)
		if err != nil {
			return nil, nil, nil, err
		}
		r, closeFile = f, f.Close
	}
	br := allocator.NewSniffer(r)
	s, err = allocator.Parse(br, path)
	if errors.Is(err, allocator.ErrUnrecognized) {
		return nil, br, closeFile, nil
	}
	if err != nil {
		closeFile()
		return nil, nil, nil, err
	}
	return s, nil, closeFile, nil
}

// captureAllocator asks the live process's allocator; a failure is noted
// and listed in failed. source names glibc's capture.
func (c *collection) captureAllocator(ctx context.Context) (other *allocator.Stats, info *mallocinfo.Info, source string) {
	r := c.r
	det, err := allocator.Detect(r.Proc, r.PID)
	if err == nil && det.Kind != allocator.Unknown {
		c.in.Notes = append(c.in.Notes, AllocatorNote(det))
	}
	if err == nil && (det.Kind == allocator.Jemalloc || det.Kind == allocator.Tcmalloc) {
		if other, err = LiveAllocator(r.Proc, r.Timeout, r.Notify).Capture(ctx, r.PID, det); err != nil {
			c.fail(string(det.Kind) + ": " + err.Error())
		}
		return other, nil, ""
	}
	capturer := mallocinfo.Capturer{UseGDB: r.UseGDB, NoStop: r.NoStop, Proc: r.Proc, Timeout: r.Timeout, Notify: r.Notify}
	if info, err = capturer.Capture(ctx, r.PID); err != nil {
		c.fail("malloc_info: " + err.Error())
	}
	return nil, info, capturer.Source(r.PID)
}

// LiveAllocator asks jemalloc or tcmalloc in a live process through gdb,
// its ptrace fallback proven once per run.
func LiveAllocator(fsys proc.FS, timeout time.Duration, notify func(string)) allocator.Live {
	return allocator.Live{Injector: gdbinject.Injector{Proc: fsys, Timeout: timeout, Notify: notify}, Canary: &allocator.PtraceCanary{}}
}

// AllocatorNote says which malloc a process uses, and how memdiag reads it.
func AllocatorNote(d allocator.Detection) string {
	if d.Kind == allocator.Glibc {
		return "allocator: glibc malloc (" + d.Library + "): memdiag mallocinfo --pid reads its arenas"
	}
	return fmt.Sprintf("allocator: %s (%s): memdiag mallocinfo --pid reads its statistics", d.Kind, d.Library)
}
