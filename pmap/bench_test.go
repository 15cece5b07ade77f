package pmap

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"
	"time"
)

// bigSmaps builds about size bytes of smaps from the real capture
// fixtures/smaps/mapper.smaps, its blocks repeated at rising addresses.
func bigSmaps(tb testing.TB, size int) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "fixtures", "smaps", "mapper.smaps"))
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := ParseSmaps(bytes.NewReader(raw), "mapper.smaps")
	if err != nil {
		tb.Fatal(err)
	}
	// Split the capture into blocks, each starting at its header line.
	blocks := bytes.SplitAfter(raw, []byte("VmFlags:"))
	var out bytes.Buffer
	addr := uint64(0x10000000)
	for out.Len() < size {
		for i := range ms {
			body := blocks[i]
			if i > 0 {
				// blocks[i] starts with the rest of the previous VmFlags line.
				body = body[bytes.IndexByte(body, '\n')+1:]
			}
			nl := bytes.IndexByte(body, '\n')
			header := body[:nl]
			rest := body[nl:]
			sp := bytes.IndexByte(header, ' ')
			l := ms[i].Len()
			fmt.Fprintf(&out, "%x-%x%s%s", addr, addr+l, header[sp:], rest)
			if i == len(ms)-1 {
				out.WriteString(" rd wr mr mw me ac \n")
			} else {
				end := bytes.IndexByte(blocks[i+1], '\n')
				out.Write(blocks[i+1][:end+1])
			}
			addr += l + 4096
		}
	}
	if _, err := ParseSmaps(bytes.NewReader(out.Bytes()), "big"); err != nil {
		tb.Fatalf("generated smaps does not parse: %v", err)
	}
	return out.Bytes()
}

// benchSmaps runs parse over ~40 MB of smaps b.N times and reports MB/s by
// wall and by CPU time.
func benchSmaps(b *testing.B, parse func(in []byte)) {
	in := bigSmaps(b, 40<<20)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime()
	for i := 0; i < b.N; i++ {
		parse(in)
	}
	reportCPU(b, cpu, len(in))
}

// BenchmarkParseSmaps measures offline parse throughput (MB/s) on ~40 MB of
// smaps. Memory per op is the answer (the mappings) plus fixed buffers.
func BenchmarkParseSmaps(b *testing.B) {
	var n int
	benchSmaps(b, func(in []byte) {
		ms, err := ParseSmaps(bytes.NewReader(in), "big")
		if err != nil {
			b.Fatal(err)
		}
		n = len(ms)
	})
	b.ReportMetric(float64(n), "mappings/op")
}

// BenchmarkDecodeSmaps is the streaming path: one Mapping reused, so memory
// stays flat whatever the input size.
func BenchmarkDecodeSmaps(b *testing.B) {
	benchSmaps(b, func(in []byte) {
		d := NewDecoder(bytes.NewReader(in), "big")
		var m Mapping
		for d.Decode(&m) == nil {
		}
	})
}

// BenchmarkScanLines is the floor the offline parse is set against: a
// bufio.Scanner reading the same input's lines and doing nothing with
// them, on the same machine in the same run.
func BenchmarkScanLines(b *testing.B) {
	benchSmaps(b, func(in []byte) {
		sc := bufio.NewScanner(bytes.NewReader(in))
		lines := 0
		for sc.Scan() {
			lines++
		}
		if sc.Err() != nil || lines == 0 {
			b.Fatalf("scanned %d lines: %v", lines, sc.Err())
		}
	})
}

// cpuTime is the CPU time the test process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds throughput by CPU time (cpu-MB/s) to a benchmark: on a
// shared machine wall time follows the other work, CPU time much less.
func reportCPU(b *testing.B, since time.Duration, size int) {
	if d := cpuTime() - since; d > 0 {
		b.ReportMetric(float64(size)*float64(b.N)/d.Seconds()/1e6, "cpu-MB/s")
	}
}

func BenchmarkClassify(b *testing.B) {
	ms, err := ParseSmaps(bytes.NewReader(bigSmaps(b, 40<<20)), "big")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Classify(ms, Hints{})
	}
}

// TestParseSmapsHint parses the same smaps with every kind of room hint —
// none, too little, exact, too much — and gets the same mappings.
func TestParseSmapsHint(t *testing.T) {
	in := bigSmaps(t, 2<<20)
	want, err := ParseSmaps(bytes.NewReader(in), "big")
	if err != nil {
		t.Fatal(err)
	}
	for _, hint := range []int{1, len(want) / 2, len(want), len(want) * 3} {
		got, err := parseSmaps(bytes.NewReader(in), "big", hint)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("hint %d: %d mappings, want %d", hint, len(got), len(want))
		}
		for i := range want {
			if !reflect.DeepEqual(got[i], want[i]) {
				t.Fatalf("hint %d: mapping %d differs:\n%+v\n%+v", hint, i, got[i], want[i])
			}
		}
	}
}
