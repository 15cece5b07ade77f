package syscalltrace

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func seedTraces(f *testing.F, pattern string) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "traces", pattern))
	if len(files) == 0 {
		f.Fatalf("no seed traces match %s", pattern)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if len(b) > 16<<10 {
			// Large seeds slow every mutation; their openings carry the forms.
			b = b[:16<<10]
		}
		f.Add(b)
	}
}

// fuzzReplay runs a reader to the end and replays what it yields; it must
// not panic, loop, or produce an inconsistent address space.
func fuzzReplay(t *testing.T, r Reader) {
	rp := NewReplay(true)
	for i := 0; ; i++ {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// A bad line is said where it is: the input's name and a line.
			var pe *ParseError
			if errors.As(err, &pe) && (pe.Name != "fuzz" || pe.Line < 1 || pe.Msg == "") {
				t.Fatalf("error %q: name %q, line %d, message %q", err, pe.Name, pe.Line, pe.Msg)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if e.Line < 0 {
			t.Fatalf("event %+v: negative line", e)
		}
		rp.Apply(e)
		if i > 1<<20 {
			t.Fatal("runaway reader")
		}
	}
	out := rp.Outstanding()
	var total uint64
	last := map[int]*Mapping{} // each live address space's highest mapping so far
	for _, m := range out {
		if m.End < m.Start {
			t.Fatalf("mapping %#x-%#x ends before it starts", m.Start, m.End)
		}
		total += m.End - m.Start
		if m.EndedBy != "" || m.TID == 0 {
			// Its address space ended (a later one may reuse the range), or
			// it was made by a line of no known task, replayed apart until
			// the trace says whose it is: neither is the live space's own.
			continue
		}
		// One address space holds each byte at most once: its mappings,
		// in order, do not overlap.
		if p := last[m.Space]; p != nil && m.Start < p.End {
			t.Fatalf("space %d: %#x-%#x overlaps %#x-%#x", m.Space, m.Start, m.End, p.Start, p.End)
		}
		last[m.Space] = m
	}
	// The groups partition the outstanding mappings: every one in one group.
	var count int
	var bytes uint64
	for _, g := range Groups(out, GroupAuto, nil) {
		count += g.Count
		bytes += g.Bytes
	}
	if count != len(out) || bytes != total {
		t.Fatalf("groups hold %d mappings of %d B; outstanding %d of %d B", count, bytes, len(out), total)
	}
}

// FuzzStrace: go test ./syscalltrace -fuzz FuzzStrace -fuzzminimizetime 5s
func FuzzStrace(f *testing.F) {
	seedTraces(f, "*.strace")
	f.Add([]byte("1 mmap(NULL, 4096, PROT_READ, MAP_FIXED, -1, 0) = 0xfffffffffffff000\n1 munmap(0xffffffffffffffff, 18446744073709551615) = 0\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzReplay(t, NewStraceReader(bytes.NewReader(in), "fuzz", 0))
	})
}

// FuzzStraceChunks: cut anywhere and decoded on workers, a trace must read
// exactly as in one piece.
// go test ./syscalltrace -fuzz FuzzStraceChunks -fuzzminimizetime 5s
func FuzzStraceChunks(f *testing.F) {
	seedTraces(f, "*.strace")
	f.Fuzz(func(t *testing.T, in []byte) {
		want := readStrace(in, len(in)+1, 0)
		for _, size := range []int{1, 37} {
			got := readStrace(in, size, 2)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("chunks of %d bytes differ from one chunk (-want +got):\n%s", size, diff)
			}
		}
	})
}

// FuzzStraceFastPath: what decodeFast accepts, the general path reads the
// same way.
// go test ./syscalltrace -fuzz FuzzStraceFastPath -fuzzminimizetime 5s
func FuzzStraceFastPath(f *testing.F) {
	for _, s := range []string{
		"NULL, 749568, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000 <0.000009>",
		"0x7f0000000000, 4096, PROT_NONE, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, 3, 0x1000) = 0x7f0000000000",
		"0x7f0000000000, 749568) = 0 <0.000021>",
		"0x7f0000000000, 4096, MADV_DONTNEED) = 0",
		"0x7f2e8b9b6000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x7f0000000000) = 0x7f0000000000",
		"0x7f2e8b9b6000, 4096, 8192, MREMAP_MAYMOVE) = 0x7f0000000000 <0.000011>",
		"NULL) = 0x55d4c0f1e000",
		"0x0, 18446744073709551615, PROT_READ, 0x22, -1, 0)   = 0xffffffffffffffff",
	} {
		for _, call := range []string{"mmap", "munmap", "madvise", "mremap", "brk"} {
			f.Add(call, s)
		}
	}
	f.Fuzz(func(t *testing.T, name, args string) {
		d := newStraceDecoder("fuzz", 1)
		fast := Event{Call: lookupCall(name), FD: -1}
		general := fast
		if !d.decodeFast(&fast, args) {
			return
		}
		if err := d.decodeGeneral(&general, name, args, 1, args); err != nil {
			t.Fatalf("decodeFast read %s(%s; the general path says %v", name, args, err)
		}
		if diff := cmp.Diff(general, fast); diff != "" {
			t.Fatalf("%s(%s: fast and general differ (-general +fast):\n%s", name, args, diff)
		}
		// Again, now that the decoder has seen these words: they are
		// matched whole the second time.
		again := Event{Call: fast.Call, FD: -1}
		if !d.decodeFast(&again, args) {
			t.Fatalf("decodeFast read %s(%s once, not twice", name, args)
		}
		if diff := cmp.Diff(general, again); diff != "" {
			t.Fatalf("%s(%s: read again, fast and general differ (-general +fast):\n%s", name, args, diff)
		}
	})
}

// FuzzPerfTrace: go test ./syscalltrace -fuzz FuzzPerfTrace -fuzzminimizetime 5s
func FuzzPerfTrace(f *testing.F) {
	seedTraces(f, "*.perf")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzReplay(t, NewPerfTraceReader(bytes.NewReader(in), "fuzz"))
	})
}

// FuzzBpftrace: go test ./syscalltrace -fuzz FuzzBpftrace -fuzzminimizetime 5s
func FuzzBpftrace(f *testing.F) {
	seedTraces(f, "*.bt")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzReplay(t, NewBpftraceReader(bytes.NewReader(in), "fuzz"))
	})
}

// FuzzSysdig: go test ./syscalltrace -fuzz FuzzSysdig -fuzzminimizetime 5s
func FuzzSysdig(f *testing.F) {
	seedTraces(f, "constructed-sysdig.*")
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzReplay(t, NewSysdigReader(bytes.NewReader(in), "fuzz"))
		fuzzReplay(t, NewSysdigJSONReader(bytes.NewReader(in), "fuzz"))
	})
}
