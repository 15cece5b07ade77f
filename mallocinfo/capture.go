package mallocinfo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/memdiag/memdiag/glibcheap"
	"github.com/memdiag/memdiag/internal/gdbinject"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
)

// Errors of a live capture, for errors.Is.
var (
	ErrNoGDB      = gdbinject.ErrNoGDB
	ErrNotGlibc   = glibcheap.ErrNotGlibc
	ErrNoPtrace   = gdbinject.ErrNoPtrace
	ErrNoProcess  = gdbinject.ErrNoProcess
	ErrCaptureRun = gdbinject.ErrRun
	// ErrUnsafeHost: see gdbinject.ErrUnsafeHost.
	ErrUnsafeHost = gdbinject.ErrUnsafeHost
	// ErrGoProgram: see gdbinject.ErrGoProgram.
	ErrGoProgram = gdbinject.ErrGoProgram
)

// MaxCapture bounds the malloc_info document a live capture reads: the
// size of the buffer the target writes it into. A real document takes
// about 3 KiB per arena.
const MaxCapture = 16 << 20

// Capturer takes malloc_info from a live process.
//
// By default it runs nothing in the process: glibc's heap is read from the
// process's memory (package glibcheap) with every thread stopped for the
// read — a few milliseconds, at most glibcheap.DefaultMaxPause — and the document written is the one the
// process's own malloc_info would have written at that instant.
//
// With UseGDB it asks the process itself, as before that reader existed:
// gdb attaches, maps a private buffer in the process, has malloc_info
// write into it through fmemopen, copies it out over a pipe, unmaps it and
// detaches. That runs code in the process, which some hosts' gdb cannot do
// without harming it; how gdb is run, and what is checked before and
// after, is gdbinject's.
type Capturer struct {
	// UseGDB calls the process's own malloc_info through gdb instead of
	// reading its memory.
	UseGDB bool
	// NoStop reads the memory while the process runs (figures may be
	// torn); no thread is stopped.
	NoStop bool
	// GDB is the gdb binary; "" looks it up in PATH.
	GDB string
	// Proc is the proc filesystem (its zero value the live one).
	Proc proc.FS
	// Timeout bounds the whole capture. On expiry gdb is interrupted; with
	// unwindonsignal it unwinds the injected call and detaches. 0 means 30 s.
	Timeout time.Duration
	// Notify, when set, is told what the capture does to the process: just
	// before gdb attaches, or after a read, how long its threads paused.
	Notify func(msg string)
	// Canary, shared among captures, proves gdb once for them all (see
	// gdbinject.Canary); nil proves it for every capture through gdb.
	Canary *gdbinject.Canary
}

func (c Capturer) procFS() proc.FS { return c.Proc }

func (c Capturer) injector() gdbinject.Injector {
	return gdbinject.Injector{GDB: c.GDB, Proc: c.procFS(), Timeout: c.Timeout, Notify: c.Notify, Canary: c.Canary}
}

// Source names where a capture of process pid comes from, for evidence.
func (c Capturer) Source(pid int) string {
	if c.UseGDB {
		return fmt.Sprintf("malloc_info of process %d (via gdb)", pid)
	}
	return fmt.Sprintf("malloc_info of process %d (read from its memory)", pid)
}

// Capture returns the malloc_info document of process pid, parsed.
func (c Capturer) Capture(ctx context.Context, pid int) (*Info, error) {
	doc, err := c.CaptureDocument(ctx, pid)
	if err != nil {
		return nil, err
	}
	return Parse(bytes.NewReader(doc), c.Source(pid))
}

// CaptureDocument returns the malloc_info document of process pid, at
// most MaxCapture bytes: what a user keeps (--save).
func (c Capturer) CaptureDocument(ctx context.Context, pid int) ([]byte, error) {
	if !c.UseGDB {
		return c.readDocument(ctx, pid)
	}
	// A zombie's maps are empty: checkGlibc would call it not glibc's.
	if err := gdbinject.CheckAlive(c.procFS(), pid); err != nil {
		return nil, err
	}
	if err := c.injector().CheckNotGo(pid, "malloc_info"); err != nil {
		return nil, err
	}
	libc, err := checkGlibc(c.procFS(), pid)
	if err != nil {
		return nil, err
	}
	res, err := c.injector().Run(ctx, pid, gdbinject.Job{
		What:      "malloc_info",
		Libraries: []string{filepath.Base(libc)},
		Script:    captureScript(),
		MaxOutput: MaxCapture,
	})
	if err != nil {
		return nil, err
	}
	text := string(res.Log)
	switch {
	case strings.Contains(text, `No symbol "malloc_info"`), strings.Contains(text, `No symbol "fmemopen"`):
		return nil, fmt.Errorf("process %d: %w: gdb finds no malloc_info symbol", pid, ErrNotGlibc)
	case strings.Contains(text, "memdiag: mmap failed"), strings.Contains(text, "memdiag: fmemopen failed"):
		return nil, fmt.Errorf("%w: process %d could not make a %d MiB buffer for the document (out of memory or address space?)", ErrCaptureRun, pid, MaxCapture>>20)
	case !strings.Contains(text, "memdiag: malloc_info returned 0"):
		return nil, fmt.Errorf("%w on process %d; gdb said: %s", ErrCaptureRun, pid, gdbinject.LastLines(text, 4))
	case len(res.Output) >= MaxCapture-captureSlack-1: // full (fmemopen may keep a byte for its NUL)
		return nil, fmt.Errorf("%w: the malloc_info document of process %d fills the %d MiB buffer: too large to read whole", ErrCaptureRun, pid, MaxCapture>>20)
	}
	return res.Output, nil
}

// readDocument reads the heap from the process's memory and writes the
// document its malloc_info would have.
func (c Capturer) readDocument(ctx context.Context, pid int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h, err := glibcheap.Reader{Proc: c.Proc, NoStop: c.NoStop}.Read(pid)
	switch {
	case errors.Is(err, procmem.ErrNoProcess), errors.Is(err, procmem.ErrZombie):
		return nil, fmt.Errorf("%w: %w", ErrNoProcess, err)
	case errors.Is(err, procmem.ErrPermission):
		return nil, fmt.Errorf("%w: %w", ErrNoPtrace, err)
	case err != nil:
		return nil, err
	}
	var doc bytes.Buffer
	if err := h.WriteMallocInfo(&doc); err != nil {
		return nil, err
	}
	if c.Notify != nil {
		c.Notify(readSummary(h))
	}
	return doc.Bytes(), nil
}

// readSummary says in words what reading h cost the process.
func readSummary(h *glibcheap.Heap) string {
	var b strings.Builder
	fmt.Fprintf(&b, "read the glibc %s heap of process %d from its memory (%d arenas, %s read)", h.Version, h.PID, len(h.Arenas), humanize.Bytes(h.ReadBytes))
	switch {
	case h.Stopped:
		fmt.Fprintf(&b, "; its %d threads were stopped for %v", h.Pause.Threads, h.Pause.Duration.Round(10*time.Microsecond))
	case h.Pause.Duration > 0:
		fmt.Fprintf(&b, "; its %d threads were stopped for %v before that read was cut short", h.Pause.Threads, h.Pause.Duration.Round(10*time.Microsecond))
	}
	b.WriteString("; no code ran in it")
	for _, n := range h.Notes {
		b.WriteString("; ")
		b.WriteString(n)
	}
	return b.String()
}

// captureSlack is the end of the buffer kept out of fmemopen's reach: the
// mode string lives there.
const captureSlack = 4096

// captureScript is what gdb runs once attached, with libc's symbols
// loaded. The buffer is
// MaxCapture bytes; fmemopen may fill all but captureSlack, and gdb copies
// at most that much whatever ftell in the target says (gdb reads the whole
// range into its own memory first). The buffer is anonymous memory of the
// target's own (no malloc, so the arenas measured are not disturbed beyond
// the FILE that fmemopen allocates), untouched pages are never resident,
// and the document goes to memdiag's pipe on gdb's descriptor 3. Every
// call's result is checked: malloc_info(0, NULL) would crash the target.
func captureScript() string {
	return fmt.Sprintf(`set $memdiag_buf = (char *) mmap(0, %[1]d, 3, 0x22, -1, 0)
if $memdiag_buf == (char *) -1 || $memdiag_buf == 0
  printf "memdiag: mmap failed\n"
else
  set *(char *)($memdiag_buf + %[2]d) = 'w'
  set *(char *)($memdiag_buf + %[2]d + 1) = 0
  set $memdiag_fp = (void *) fmemopen($memdiag_buf, %[2]d, $memdiag_buf + %[2]d)
  if $memdiag_fp == 0
    printf "memdiag: fmemopen failed\n"
  else
    set $memdiag_rc = (int) malloc_info(0, $memdiag_fp)
    set $memdiag_len = (long) ftell($memdiag_fp)
    set $memdiag_closed = (int) fclose($memdiag_fp)
    if $memdiag_len > 0 && $memdiag_len <= %[2]d
      dump binary memory /dev/fd/3 $memdiag_buf $memdiag_buf + $memdiag_len
    end
    printf "memdiag: malloc_info returned %%d, %%ld bytes, fclose %%d\n", $memdiag_rc, $memdiag_len, $memdiag_closed
  end
  set $memdiag_unmapped = (int) munmap($memdiag_buf, %[1]d)
end
`, MaxCapture, MaxCapture-captureSlack)
}

// checkGlibc looks for glibc's libc.so among the process's mappings and
// returns its path.
func checkGlibc(fsys proc.FS, pid int) (string, error) {
	path, err := fsys.FindMapping(pid, func(p string) bool {
		return strings.HasSuffix(p, "/libc.so.6") || strings.Contains(p, "/libc-2.") || strings.Contains(p, "/ld-musl")
	})
	switch {
	case errors.Is(err, proc.ErrNoProcess):
		return "", fmt.Errorf("process %d: %w", pid, ErrNoProcess)
	case errors.Is(err, proc.ErrPermission):
		return "", fmt.Errorf("process %d: %w: reading its maps needs the same uid or CAP_SYS_PTRACE", pid, ErrNoPtrace)
	case err != nil:
		return "", err
	case strings.Contains(path, "/ld-musl"):
		return "", fmt.Errorf("process %d: %w: it uses musl libc, which has no malloc_info", pid, ErrNotGlibc)
	case path == "":
		return "", fmt.Errorf("process %d: %w: no libc.so.6 mapped (statically linked, or another libc): malloc_info unavailable", pid, ErrNotGlibc)
	}
	return path, nil
}
