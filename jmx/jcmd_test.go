package jmx

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func open(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "fixtures", "jvm", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// mxbeans reads what Alloc printed from its own MXBeans when captured.
func mxbeans(t *testing.T, gc string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", gc+".mxbeans"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, " "); ok {
			out[k], _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return out
}

// TestHeapInfoCaptures parses GC.heap_info of five collectors, captured
// from real JVMs, and checks the figures against the JVM's own MXBeans.
func TestHeapInfoCaptures(t *testing.T) {
	for _, tt := range []struct {
		file, gc string
		hasRange bool
	}{{"g1", "G1", true}, {"serial", "Serial", true}, {"parallel", "Parallel", true}, {"z", "ZGC", false}, {"shenandoah", "Shenandoah", true}} {
		t.Run(tt.file, func(t *testing.T) {
			hi, err := ParseHeapInfo(open(t, tt.file+".heap_info"), tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if hi.GC != tt.gc {
				t.Errorf("GC %q, want %q", hi.GC, tt.gc)
			}
			if (hi.End > hi.Start) != tt.hasRange {
				t.Errorf("range [%#x, %#x), want a range: %v", hi.Start, hi.End, tt.hasRange)
			}
			if tt.hasRange && hi.End-hi.Start != 256<<20 {
				t.Errorf("range spans %d B, want -Xmx256m", hi.End-hi.Start)
			}
			// The arrays stay reachable: at least 64 MiB is used.
			if hi.UsedBytes < 64<<20 || hi.CommittedBytes < hi.UsedBytes || hi.MetaspaceCommittedBytes == 0 {
				t.Errorf("used %d, committed %d, metaspace %d", hi.UsedBytes, hi.CommittedBytes, hi.MetaspaceCommittedBytes)
			}
			truth := mxbeans(t, tt.file)
			if c := uint64(truth["heap_committed"]); tt.gc != "ZGC" && tt.gc != "Shenandoah" && hi.CommittedBytes != c {
				t.Errorf("committed %d, MXBean %d", hi.CommittedBytes, c)
			}
		})
	}
}

func TestNMTCaptures(t *testing.T) {
	for _, gc := range []string{"g1", "parallel", "z", "shenandoah"} {
		t.Run(gc, func(t *testing.T) {
			n, err := ParseNMT(open(t, gc+".nmt"), gc)
			if err != nil {
				t.Fatal(err)
			}
			var sum uint64
			for _, c := range n.Categories {
				sum += c.CommittedBytes
			}
			// NMT prints each category rounded to KB.
			if d := int64(sum) - int64(n.CommittedBytes); d < -int64(len(n.Categories))*1024 || d > int64(len(n.Categories))*1024 {
				t.Errorf("categories add up to %d, total committed %d", sum, n.CommittedBytes)
			}
			other, ok := n.Category("Other")
			if direct := uint64(mxbeans(t, gc)["pool_direct_used"]); !ok || other.CommittedBytes < direct {
				t.Errorf("Other %d B must hold the %d B of direct buffers", other.CommittedBytes, direct)
			}
			if th, ok := n.Category("Thread"); !ok || th.StackReservedBytes == 0 {
				t.Errorf("Thread category %+v lacks its stacks", th)
			}
		})
	}
	_, err := ParseNMT(open(t, "serial.nmt"), "serial.nmt")
	if !errors.Is(err, ErrNMTDisabled) || !strings.Contains(err.Error(), "-XX:NativeMemoryTracking=summary") {
		t.Errorf("NMT off: %v", err)
	}
}

// The detail report: its summary reads as the summary does (the per-site
// details after it change nothing), and its committed ranges add up, per
// category, to what the summary says is mmap- or stack-committed.
func TestNMTDetailCapture(t *testing.T) {
	n, err := ParseNMT(open(t, "g1-detail.nmt"), "g1-detail.nmt")
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, c := range n.Categories {
		sum += c.CommittedBytes
	}
	if d := int64(sum) - int64(n.CommittedBytes); d < -int64(len(n.Categories))*1024 || d > int64(len(n.Categories))*1024 {
		t.Errorf("categories add up to %d, total committed %d", sum, n.CommittedBytes)
	}
	if len(n.Regions) < 20 {
		t.Fatalf("%d committed regions", len(n.Regions))
	}
	byCat := map[string]uint64{}
	for i, r := range n.Regions {
		if i > 0 && r.Start < n.Regions[i-1].Start {
			t.Errorf("regions out of order at %d", i)
		}
		byCat[r.Category] += r.End - r.Start
	}
	for _, c := range n.Categories {
		want := c.MmapCommittedBytes + c.StackCommittedBytes
		if got := byCat[c.Name]; got/1024 != want/1024 {
			t.Errorf("%s: regions hold %d B, the summary says %d B committed", c.Name, got, want)
		}
		delete(byCat, c.Name)
	}
	if len(byCat) > 0 {
		t.Errorf("regions of categories the summary lacks: %v", byCat)
	}
}

// A detail report's ranges class mappings, but only its "Java Heap" ones
// locate the heap: GC regions alone say nothing of where the heap is.
func TestHeapRangeSource(t *testing.T) {
	gc := NMTRegion{Category: "GC", Start: 0x1000, End: 0x2000}
	heap := NMTRegion{Category: "Java Heap", Start: 0x10000, End: 0x20000}
	for _, tc := range []struct {
		name    string
		m       *JVMMemory
		want    string
		regions int
	}{
		{"nothing", &JVMMemory{}, "", 0},
		{"NMT detail without heap ranges", &JVMMemory{NMT: &NMT{Regions: []NMTRegion{gc}}}, "", 1},
		{"NMT detail", &JVMMemory{NMT: &NMT{Regions: []NMTRegion{gc, heap}}}, "VM.native_memory detail", 2},
		{"GC.heap_info first", &JVMMemory{HeapRange: &Range{Start: 0x10000, End: 0x40000}, NMT: &NMT{Regions: []NMTRegion{gc, heap}}}, "GC.heap_info", 2},
	} {
		if got := tc.m.HeapRangeSource(); got != tc.want {
			t.Errorf("%s: HeapRangeSource %q, want %q", tc.name, got, tc.want)
		}
		if got := len(tc.m.Regions()); got != tc.regions {
			t.Errorf("%s: %d regions, want %d", tc.name, got, tc.regions)
		}
	}
}

func TestJcmdErrors(t *testing.T) {
	if _, err := ParseNMT(strings.NewReader("hello\n"), "x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseNMT(garbage) = %v", err)
	}
	if _, err := ParseHeapInfo(strings.NewReader("hello\n"), "x"); !errors.Is(err, ErrMalformed) {
		t.Errorf("ParseHeapInfo(garbage) = %v", err)
	}
}

func TestHsperfSample(t *testing.T) {
	b, err := os.ReadFile("../../shared/samples/hsperfdata_sample.bin")
	if err != nil {
		t.Skipf("shared sample absent: %v", err)
	}
	c, err := ParseHsperf(b, "sample")
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 187 || c["java.threads.live"].Value != 7 || c["sun.rt.jvmCapabilities"].String == "" {
		t.Errorf("%d counters, threads.live %d", len(c), c["java.threads.live"].Value)
	}
	var m JVMMemory
	hsperfMemory(c, &m)
	if !m.Heap.Known || m.Heap.CommittedBytes == 0 {
		t.Errorf("heap from hsperfdata: %+v", m.Heap)
	}
	for _, bad := range [][]byte{nil, []byte("not hsperf data, no magic here at all"), append(append([]byte{}, b[:40]...), 0xff)} {
		if _, err := ParseHsperf(bad, "bad"); !errors.Is(err, ErrNotHsperf) {
			t.Errorf("ParseHsperf(%d bytes) = %v, want ErrNotHsperf", len(bad), err)
		}
	}
}

// FuzzHsperf: the parser reads a file another user's JVM wrote.
func FuzzHsperf(f *testing.F) {
	if b, err := os.ReadFile("../../shared/samples/hsperfdata_sample.bin"); err == nil {
		f.Add(b)
	}
	f.Add([]byte{0xca, 0xfe, 0xc0, 0xc0, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseHsperf(b, "fuzz")
		if err == nil {
			var m JVMMemory
			hsperfMemory(c, &m)
		}
	})
}

// FuzzJcmd: NMT and heap_info text.
func FuzzJcmd(f *testing.F) {
	for _, n := range []string{"g1.nmt", "g1.heap_info", "z.heap_info", "shenandoah.heap_info", "parallel.heap_info"} {
		if b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", n)); err == nil {
			f.Add(b)
		}
	}
	if b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", "g1-detail.nmt")); err == nil {
		// The summary, the first reservations of the map and the start of
		// the details: every section, small enough to mutate quickly.
		lines := strings.SplitAfter(string(b), "\n")
		f.Add([]byte(strings.Join(lines[:130], "") + "Details:\n" + strings.Join(lines[525:540], "")))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := ParseNMT(strings.NewReader(string(b)), "fuzz"); err == nil {
			for i, r := range n.Regions {
				if r.End <= r.Start || (i > 0 && r.Start < n.Regions[i-1].Start) || r.Category == "" {
					t.Fatalf("region %d %+v: empty, unnamed or out of order", i, r)
				}
			}
		}
		_, _ = ParseHeapInfo(strings.NewReader(string(b)), "fuzz")
	})
}
