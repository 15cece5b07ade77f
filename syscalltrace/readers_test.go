package syscalltrace

import (
	"errors"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Every reader delivers the events before a bad line, then an error that
// names the line, then keeps returning that error: a replay stopped there
// has seen all the trace had up to the damage.
func TestReadersDeliverEventsBeforeABadLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(io.Reader) Reader
		good string
		bad  string
	}{
		{"strace", func(r io.Reader) Reader { return NewStraceReader(r, "in", 0) },
			"100 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
			"100 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = garbage"},
		{"perf trace", func(r io.Reader) Reader { return NewPerfTraceReader(r, "in") },
			"     0.208 ( 0.017 ms): demo/6006 mmap(len: 4096, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS) = 0x7f0000000000",
			"     0.309 ( 0.017 ms): demo/6006 mmap(len: 4096, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS = 0x7f0000001000"},
		{"bpftrace", func(r io.Reader) Reader { return NewBpftraceReader(r, "in") },
			"memdiag call=mmap pid=1 tid=1 enter=10 exit=20 addr=0x0 len=4096 prot=3 flags=34 fd=-1 off=0 ret=139824710574080",
			"memdiag call=mmap pid=1 tid=1 enter=30 exit=40 addr=0x0 len=lots prot=3 flags=34 fd=-1 off=0 ret=139824710578176"},
		{"sysdig json", func(r io.Reader) Reader { return NewSysdigJSONReader(r, "in") },
			`{"evt.dir": "<", "evt.info": "res=139704740036608 addr=0 length=4096 prot=0(PROT_READ|PROT_WRITE) flags=0(MAP_PRIVATE|MAP_ANONYMOUS) fd=-1 offset=0", "evt.num": 2, "evt.time": "02:29:03.136636000", "evt.type": "mmap", "proc.name": "demo", "thread.tid": 1}`,
			`{"evt.dir": "<", "evt.info": "res=1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.open(strings.NewReader(tc.good + "\n" + tc.bad + "\n"))
			e, err := r.Next()
			if err != nil {
				t.Fatalf("first Next: %v", err)
			}
			if e.Len != 4096 || e.Line != 1 {
				t.Errorf("event %+v, want the 4096-byte mmap of line 1", e)
			}
			for i := 0; i < 2; i++ {
				var pe *ParseError
				_, err := r.Next()
				if !errors.Is(err, ErrMalformed) || !errors.As(err, &pe) || pe.Line != 2 {
					t.Fatalf("Next after the good line: %v, want a malformed-line error at in:2", err)
				}
			}
		})
	}
}

func TestApplyAllStopsAtReadError(t *testing.T) {
	trace := "100 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n" +
		"100 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = garbage\n"
	r := NewReplay(true)
	err := r.ApplyAll(NewStraceReader(strings.NewReader(trace), "in.strace", 0))
	if err == nil || !strings.Contains(err.Error(), "in.strace:2") {
		t.Fatalf("err %v, want one naming in.strace:2", err)
	}
	if got := len(r.Outstanding()); got != 1 {
		t.Errorf("%d outstanding mappings, want the 1 read before the error", got)
	}
}

// TestExpandEmptyDirectory: a directory with no trace file in it (empty, or
// only a FIFO) is an error naming it, not an empty list for Combine.
func TestExpandEmptyDirectory(t *testing.T) {
	empty := t.TempDir()
	fifoOnly := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fifoOnly, "trace.1"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{empty, fifoOnly} {
		files, _, err := Expand([]string{dir})
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("Expand(%s) = %v, %v; want an error naming it", dir, files, err)
		}
	}
	src, stop := Combine(nil, 2)
	defer stop()
	if e, err := src.Next(); err != io.EOF {
		t.Errorf("Combine(no inputs).Next() = %v, %v; want io.EOF", e, err)
	}
}
