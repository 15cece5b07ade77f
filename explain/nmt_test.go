package explain

import (
	"os"
	"testing"

	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/pmap"
)

// TestWeighNMT joins a real detail report with the smaps taken beside it:
// the pre-touched heap is resident whole, the 32 MiB G1 region NMT calls
// committed is not resident at all.
func TestWeighNMT(t *testing.T) {
	f, err := os.Open("../fixtures/jvm/g1-detail.nmt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nmt, err := jmx.ParseNMT(f, f.Name())
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.Open("../fixtures/jvm/g1-detail.smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ms, err := pmap.ParseSmaps(s, s.Name())
	if err != nil {
		t.Fatal(err)
	}
	pmap.Classify(ms, pmap.Hints{})
	in := &Inputs{}
	in.FromMappings(ms)
	in.FromJVM(&jmx.JVMMemory{NMT: nmt})
	if err := in.WeighNMT(nmt.Regions, ms, nil); err != nil {
		t.Fatal(err)
	}
	got := map[string]NMTBrief{}
	for _, c := range in.JVM.NMT {
		if c.MmapResidentBytes == nil {
			t.Fatalf("%s not weighed", c.Name)
		}
		if *c.MmapResidentBytes > c.MmapCommittedBytes+c.StackCommittedBytes {
			t.Errorf("%s: %d B resident of %d B committed", c.Name, *c.MmapResidentBytes, c.MmapCommittedBytes+c.StackCommittedBytes)
		}
		got[c.Name] = c
	}
	if h := got["Java Heap"]; *h.MmapResidentBytes != 256<<20 {
		t.Errorf("Java Heap resident %d B, want the 256 MiB -XX:+AlwaysPreTouch touched", *h.MmapResidentBytes)
	}
	gc := got["GC"]
	if *gc.MmapResidentBytes+32<<20 > gc.MmapCommittedBytes {
		t.Errorf("GC resident %d B of %d B committed: the untouched 32 MiB region counted", *gc.MmapResidentBytes, gc.MmapCommittedBytes)
	}
	r := Attribute(in)
	if r.RSSBytes < 256<<20 || sum(r) != r.RSSBytes {
		t.Errorf("categories sum to %d, RSS %d", sum(r), r.RSSBytes)
	}
}

func TestProportion(t *testing.T) {
	for _, tc := range []struct{ n, part, whole, want uint64 }{
		{100, 1, 4, 25},
		{1 << 40, 1 << 40, 1 << 41, 1 << 39}, // n × part overflows 64 bits
		{7, 3, 3, 7},
		{0, 5, 10, 0},
	} {
		if got := proportion(tc.n, tc.part, tc.whole); got != tc.want {
			t.Errorf("proportion(%d, %d, %d) = %d, want %d", tc.n, tc.part, tc.whole, got, tc.want)
		}
	}
}

// Ranges that class mappings jvm-native do not make the heap range known.
func TestFromJVMHeapRangeNeedsHeapRanges(t *testing.T) {
	in := &Inputs{}
	in.FromJVM(&jmx.JVMMemory{NMT: &jmx.NMT{Regions: []jmx.NMTRegion{{Category: "Code", Start: 0x1000, End: 0x9000}}}})
	if in.JVM.HeapRangeKnown || in.JVM.HeapRangeSource != "" {
		t.Errorf("heap range known %v from %q, with only a Code range", in.JVM.HeapRangeKnown, in.JVM.HeapRangeSource)
	}
}
