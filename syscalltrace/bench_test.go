package syscalltrace

import (
	"bytes"
	"os/exec"
	"runtime"
	"testing"
)

// benchTrace generates 64 MiB of strace -f -tt -T output with bench/gentrace:
// balanced churn across threads, split calls, mremap and partial munmaps.
func benchTrace(b *testing.B) []byte {
	b.Helper()
	out, err := exec.Command("go", "run", "../bench/gentrace", "-size", "64M").Output()
	if err != nil {
		b.Fatalf("bench/gentrace: %v", err)
	}
	return out
}

// BenchmarkStraceReplay is `memdiag trace FILE` without the rendering: read,
// parse and replay. bench/trace.sh sets it beside awk and wc on 1 GB.
func BenchmarkStraceReplay(b *testing.B) {
	trace := benchTrace(b)
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReplay(true)
		if err := r.ApplyAll(NewStraceReader(bytes.NewReader(trace), "bench", 0)); err != nil {
			b.Fatal(err)
		}
		if len(r.Outstanding()) == 0 {
			b.Fatal("no outstanding mappings: the generator changed")
		}
	}
}

// BenchmarkReplay is the replay alone, over the events of the generated
// trace decoded beforehand.
func BenchmarkReplay(b *testing.B) {
	trace := benchTrace(b)
	var events []*Event
	s := NewStraceReader(bytes.NewReader(trace), "bench", 0)
	for {
		e, err := s.Next()
		if err != nil {
			break
		}
		c := *e
		events = append(events, &c)
	}
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReplay(true)
		for _, e := range events {
			r.Apply(e)
		}
		if len(r.Outstanding()) == 0 {
			b.Fatal("no outstanding mappings: the generator changed")
		}
	}
}

// BenchmarkStraceReplayParallel is BenchmarkStraceReplay with the decoding
// on every core, as `memdiag trace FILE` runs it.
func BenchmarkStraceReplayParallel(b *testing.B) {
	trace := benchTrace(b)
	b.SetBytes(int64(len(trace)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReplay(true)
		s := NewStraceReader(bytes.NewReader(trace), "bench", 0)
		s.Workers = runtime.GOMAXPROCS(0)
		if err := r.ApplyAll(s); err != nil {
			b.Fatal(err)
		}
		if len(r.Outstanding()) == 0 {
			b.Fatal("no outstanding mappings: the generator changed")
		}
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
			if err != nil {
				break
			}
			n++
		}
		if n == 0 {
			b.Fatal("no events")
		}
	}
}
