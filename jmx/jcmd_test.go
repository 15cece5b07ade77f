package jmx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
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

// TestHsperfLive reads the hsperfdata of a JVM the test starts (the file
// the JVM itself keeps in /tmp/hsperfdata_USER/PID).
func TestHsperfLive(t *testing.T) {
	p := testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: []string{"-Xmx256m", "-XX:+UsePerfData"},
		Args: []string{"16", "8", "4", filepath.Join(t.TempDir(), "mapped.bin")}})
	u, err := user.Current()
	if err != nil {
		t.Skipf("no user name for uid %d, so no hsperfdata directory to read: %v", os.Getuid(), err)
	}
	b, err := os.ReadFile(filepath.Join(os.TempDir(), "hsperfdata_"+u.Username, strconv.Itoa(p.PID())))
	if err != nil {
		t.Fatalf("the JVM ran with -XX:+UsePerfData but left no hsperfdata: %v", err)
	}
	c, err := parseHsperf(b, "live")
	if err != nil {
		t.Fatal(err)
	}
	if len(c) < 100 || c["java.threads.live"].Value < 1 || c["sun.rt.jvmCapabilities"].String == "" {
		t.Errorf("%d counters, threads.live %d", len(c), c["java.threads.live"].Value)
	}
	var m JVMMemory
	hsperfMemory(c, &m)
	if !m.Heap.Known || m.Heap.CommittedBytes == 0 {
		t.Errorf("heap from hsperfdata: %+v", m.Heap)
	}
	for _, bad := range [][]byte{nil, []byte("not hsperf data, no magic here at all"), append(append([]byte{}, b[:40]...), 0xff)} {
		if _, err := parseHsperf(bad, "bad"); !errors.Is(err, ErrNotHsperf) {
			t.Errorf("parseHsperf(%d bytes) = %v, want ErrNotHsperf", len(bad), err)
		}
	}
}

// FuzzHsperf: the parser reads a file another user's JVM wrote. Whatever
// it accepts, written back out, parses to the same counters: a parse that
// invents, drops or misreads a counter fails the round trip.
func FuzzHsperf(f *testing.F) {
	f.Add(encodeHsperf(hsperfSeed(), binary.BigEndian))
	f.Add(encodeHsperf(hsperfSeed(), binary.LittleEndian))
	f.Add([]byte{0xca, 0xfe, 0xc0, 0xc0, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseHsperf(b, "fuzz")
		if err != nil {
			return
		}
		again, err := parseHsperf(encodeHsperf(c, binary.LittleEndian), "again")
		if err != nil {
			t.Fatalf("the counters parsed, written back, do not parse: %v", err)
		}
		if !reflect.DeepEqual(again, c) {
			t.Fatalf("round trip changed the counters:\n got %+v\nwant %+v", again, c)
		}
		var m JVMMemory
		hsperfMemory(c, &m)
	})
}

// FuzzJcmd: NMT and heap_info text. NMT's regions are non-empty, named and
// in order; heap_info parses deterministically, names its input in errors
// and holds no inverted range.
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
		// heap_info: the same text parses the same twice, an error names
		// the input, and a parse holds no reserved range ending before it
		// starts and no used heap beyond a committed one it states.
		hi, err := ParseHeapInfo(strings.NewReader(string(b)), "fuzz")
		again, againErr := ParseHeapInfo(strings.NewReader(string(b)), "fuzz")
		if fmt.Sprint(err) != fmt.Sprint(againErr) || !reflect.DeepEqual(hi, again) {
			t.Fatalf("parsed twice: %+v, %v; then %+v, %v", hi, err, again, againErr)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		if hi.End < hi.Start {
			t.Fatalf("reserved range ends before it starts: %+v", hi)
		}
	})
}

// TestNMTTruncated cuts each real summary at every byte: a cut that loses more than rounding can hide (nmtSlackKB)
// is ErrTruncated, naming the file; a cut that loses less is accepted.
func TestNMTTruncated(t *testing.T) {
	for _, file := range []string{"g1.nmt", "parallel.nmt", "shenandoah.nmt", "z.nmt", "g1-detail.nmt"} {
		b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", file))
		if err != nil {
			t.Fatal(err)
		}
		whole, err := ParseNMT(strings.NewReader(string(b)), file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		text := string(b)
		if i := strings.Index(text, "Virtual memory map:"); i >= 0 {
			text = text[:i]
		}
		detected := 0
		totalAt := strings.Index(text, "Total:")
		totalEnd := totalAt + strings.IndexByte(text[totalAt:], '\n')
		for cut := totalAt; cut < len(text); cut++ {
			n, err := ParseNMT(strings.NewReader(text[:cut]), file)
			// What the cut lost: the whole's categories it lacks or cuts short.
			var lostReserved, lostCommitted uint64
			for i, c := range whole.Categories {
				// Only the header's figures are checked against the Total:
				// a cut among a block's breakdown lines drops them unseen.
				if n == nil || i >= len(n.Categories) || n.Categories[i].ReservedBytes != c.ReservedBytes || n.Categories[i].CommittedBytes != c.CommittedBytes {
					lostReserved += c.ReservedBytes
					lostCommitted += c.CommittedBytes
				}
			}
			lost := max(lostReserved, lostCommitted)
			switch {
			case cut < totalEnd:
				// Cut inside the Total line itself: not a summary, or nothing after it.
				if err == nil {
					t.Fatalf("%s cut at byte %d, in the Total line: accepted", file, cut)
				}
				continue
			case lost > nmtSlackKB<<10:
				if !errors.Is(err, ErrTruncated) || !strings.HasPrefix(err.Error(), file+":") {
					t.Fatalf("%s cut at byte %d (%d KB lost): %v; want ErrTruncated", file, cut, lost>>10, err)
				}
				detected++
			case err != nil:
				t.Fatalf("%s cut at byte %d (%d KB lost, within rounding): %v", file, cut, lost>>10, err)
			}
		}
		if detected == 0 {
			t.Errorf("%s: no cut detected", file)
		}
	}
	if _, err := ParseNMT(strings.NewReader("Total: reserved=1745195KB, committed=347763KB\n"), "t"); !errors.Is(err, ErrTruncated) {
		t.Errorf("a Total line alone: %v", err)
	}
}

func TestNMTTwoSummaries(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", "g1.nmt"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = ParseNMT(strings.NewReader(string(b)+string(b)), "twice.nmt")
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "more than one summary") {
		t.Errorf("two summaries in one file: %v", err)
	}
}

func TestHeapInfoTruncated(t *testing.T) {
	for _, gc := range []string{"g1", "parallel", "serial", "shenandoah", "z"} {
		b, err := os.ReadFile(filepath.Join("..", "fixtures", "jvm", gc+".heap_info"))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		cut := text[:strings.Index(text, " Metaspace")]
		if _, err := ParseHeapInfo(strings.NewReader(cut), gc); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s cut before Metaspace: %v, want ErrTruncated", gc, err)
		}
	}
	// JDK 11 prints a capacity too.
	jdk11 := " garbage-first heap   total 262144K, used 2048K [0x00000000f0000000, 0x0000000100000000)\n" +
		"  region size 1024K, 3 young (3072K), 0 survivors (0K)\n" +
		" Metaspace       used 6453K, capacity 6568K, committed 6784K, reserved 1056768K\n" +
		"  class space    used 570K, capacity 608K, committed 640K, reserved 1048576K\n"
	h, err := ParseHeapInfo(strings.NewReader(jdk11), "jdk11")
	if err != nil || h.MetaspaceCommittedBytes != 6784<<10 || h.ClassSpaceReservedBytes != 1048576<<10 {
		t.Errorf("JDK 11 heap_info: %+v, %v", h, err)
	}
}

func TestJcmdLongLine(t *testing.T) {
	in := "Total: reserved=1KB, committed=1KB\n" + strings.Repeat("x", maxJcmdLine+1) + "\n"
	for _, parse := range []func() error{
		func() error { _, err := ParseNMT(strings.NewReader(in), "long"); return err },
		func() error { _, err := ParseHeapInfo(strings.NewReader(in), "long"); return err },
	} {
		if err := parse(); !errors.Is(err, ErrMalformed) || err.Error() != "long:2: line longer than 1024 KiB: not jcmd output" {
			t.Errorf("long line: %v", err)
		}
	}
}

// TestParseNMTRegionsBounded: a detail report that lists more committed
// regions than a process can map is refused, not held (the red team's fake
// JVM listed 480,000 and cost 280 MB).
func TestParseNMTRegionsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("Native Memory Tracking:\n\nTotal: reserved=1KB, committed=1KB\n\nVirtual memory map:\n\n")
	b.WriteString("[0x0000000000001000 - 0x0000100000001000] reserved 1KB for Other from\n")
	for i := 0; i <= maxNMTRegions; i++ {
		fmt.Fprintf(&b, "\t[0x%x - 0x%x] committed 4KB from\n", 0x1000+i*0x1000, 0x2000+i*0x1000)
	}
	_, err := ParseNMT(strings.NewReader(b.String()), "huge")
	if err == nil || !strings.Contains(err.Error(), "more than a process can map") {
		t.Errorf("got %v", err)
	}
}
