package syscalltrace

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
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
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		rp.Apply(e)
		if i > 1<<20 {
			t.Fatal("runaway reader")
		}
	}
	for _, m := range rp.Outstanding() {
		if m.End < m.Start {
			t.Fatalf("mapping %#x-%#x ends before it starts", m.Start, m.End)
		}
	}
	_ = Groups(rp.Outstanding(), GroupAuto, nil)
}

// FuzzStrace: go test ./syscalltrace -fuzz FuzzStrace -fuzzminimizetime 5s
func FuzzStrace(f *testing.F) {
	seedTraces(f, "*.strace")
	f.Add([]byte("1 mmap(NULL, 4096, PROT_READ, MAP_FIXED, -1, 0) = 0xfffffffffffff000\n1 munmap(0xffffffffffffffff, 18446744073709551615) = 0\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		fuzzReplay(t, NewStraceReader(bytes.NewReader(in), "fuzz", 0))
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
