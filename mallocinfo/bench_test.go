package mallocinfo

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// document writes a malloc_info document with n arenas, each with a
// histogram of 40 size classes, in the shape glibc writes.
func document(w io.Writer, n int) {
	fmt.Fprintln(w, `<malloc version="1">`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "<heap nr=\"%d\">\n<sizes>\n", i)
		for j := 0; j < 40; j++ {
			fmt.Fprintf(w, "  <size from=\"%d\" to=\"%d\" total=\"%d\" count=\"%d\"/>\n", 49+j*48, 49+j*48, (49+j*48)*25, 25)
		}
		fmt.Fprintf(w, "  <unsorted from=\"145\" to=\"1537\" total=\"706979\" count=\"803\"/>\n</sizes>\n")
		fmt.Fprintf(w, "<total type=\"fast\" count=\"50\" size=\"3600\"/>\n<total type=\"rest\" count=\"1804\" size=\"67108864\"/>\n")
		fmt.Fprintf(w, "<system type=\"current\" size=\"134217728\"/>\n<system type=\"max\" size=\"134217728\"/>\n")
		fmt.Fprintf(w, "<aspace type=\"total\" size=\"134217728\"/>\n<aspace type=\"mprotect\" size=\"134217728\"/>\n<aspace type=\"subheaps\" size=\"2\"/>\n</heap>\n")
	}
	fmt.Fprintln(w, `<total type="fast" count="0" size="0"/>`)
	fmt.Fprintln(w, `<total type="rest" count="0" size="0"/>`)
	fmt.Fprintln(w, `<total type="mmap" count="4" size="1212416"/>`)
	fmt.Fprintln(w, `<system type="current" size="0"/>`)
	fmt.Fprintln(w, `<system type="max" size="0"/>`)
	fmt.Fprintln(w, `<aspace type="total" size="0"/>`)
	fmt.Fprintln(w, `<aspace type="mprotect" size="0"/>`)
	fmt.Fprintln(w, `</malloc>`)
}

// BenchmarkParse1000Arenas: one document of 1,000 arenas (~2.6 MB).
func BenchmarkParse1000Arenas(b *testing.B) {
	var buf bytes.Buffer
	document(&buf, 1000)
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		info, err := Parse(bytes.NewReader(in), "bench")
		if err != nil {
			b.Fatal(err)
		}
		_ = Analyze(info)
	}
}

// BenchmarkScanLog: a ~100 MB log of about 500 documents (64 arenas each)
// among 400 log lines each. Memory held is one document plus the series.
func BenchmarkScanLog(b *testing.B) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < 100<<20; i++ {
		for j := 0; j < 400; j++ {
			fmt.Fprintf(&buf, "2026-11-22T02:%02d:%02d.000Z INFO request %d served in 3 ms by worker-%d\n", i%60, j, i*100+j, j%8)
		}
		document(&buf, 64)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		se := NewSeries()
		docs := 0
		err := Scan(bytes.NewReader(in), "bench", func(info *Info) error {
			se.Add(Analyze(info))
			docs++
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(docs), "docs/op")
	}
}
