package syscalltrace

import (
	"bytes"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"testing"
)

var (
	benchOnce  sync.Once
	benchBytes []byte
	benchErr   error
)

// benchTrace generates 64 MiB of strace -f -tt -T output with bench/gentrace,
// once per test binary: balanced churn across threads, split calls, mremap
// and partial munmaps.
func benchTrace(b *testing.B) []byte {
	b.Helper()
	benchOnce.Do(func() {
		benchBytes, benchErr = exec.Command("go", "run", "../bench/gentrace", "-size", "64M").Output()
	})
	if benchErr != nil {
		b.Fatalf("bench/gentrace: %v", benchErr)
	}
	return benchBytes
}

// benchReplay reads, parses and replays the generated trace, decoding on
// workers goroutines (0: the replay's own).
func benchReplay(b *testing.B, workers int) {
	trace := benchTrace(b)
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReplay(true)
		s := NewStraceReader(bytes.NewReader(trace), "bench", 0)
		s.Workers = workers
		if err := r.ApplyAll(s); err != nil {
			b.Fatal(err)
		}
		if len(r.Outstanding()) == 0 {
			b.Fatal("no outstanding mappings: the generator changed")
		}
	}
}

// BenchmarkStraceReplay is `memdiag trace FILE` without the rendering, on
// one goroutine. bench/trace.sh sets the command beside awk and wc on 1 GB.
func BenchmarkStraceReplay(b *testing.B) { benchReplay(b, 0) }

// BenchmarkStraceReplayParallel decodes on every core, as `memdiag trace
// FILE` does.
func BenchmarkStraceReplayParallel(b *testing.B) { benchReplay(b, runtime.GOMAXPROCS(0)) }

// readEvents decodes every event of trace on one goroutine, copying each.
func readEvents(b *testing.B, trace []byte) []Event {
	var events []Event
	s := NewStraceReader(bytes.NewReader(trace), "bench", 0)
	for {
		e, err := s.Next()
		if err == io.EOF {
			return events
		}
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, *e)
	}
}

// BenchmarkStraceDecode is the strace reader alone, on one goroutine.
func BenchmarkStraceDecode(b *testing.B) {
	trace := benchTrace(b)
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := NewStraceReader(bytes.NewReader(trace), "bench", 0)
		n := 0
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n == 0 {
			b.Fatal("no events")
		}
	}
}

// BenchmarkReplay is the replay alone, over the generated trace's events
// decoded beforehand.
func BenchmarkReplay(b *testing.B) {
	trace := benchTrace(b)
	events := readEvents(b, trace)
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReplay(true)
		for j := range events {
			r.Apply(&events[j])
		}
		if len(r.Outstanding()) == 0 {
			b.Fatal("no outstanding mappings: the generator changed")
		}
	}
}
