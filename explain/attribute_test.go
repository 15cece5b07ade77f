package explain

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/goruntime"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/nodejs"
	"github.com/memdiag/memdiag/pmap"
)

func u64(v uint64) *uint64 { return &v }

func sum(r *Result) uint64 {
	var n uint64
	for _, e := range r.Attribution {
		n += e.Bytes
	}
	return n
}

// TestAttributePartitionsRSS: whatever the evidence claims — even more
// than is resident — the categories sum to RSS exactly and none is negative.
func TestAttributePartitionsRSS(t *testing.T) {
	classes := []ClassSum{
		{Class: "file-code", RSSBytes: 10 << 20}, {Class: "file-data", RSSBytes: 5 << 20}, {Class: "shmem", RSSBytes: 1 << 20},
		{Class: "thread-stack", RSSBytes: 2 << 20}, {Class: "stack", RSSBytes: 1 << 16}, {Class: "glibc-arena", RSSBytes: 300 << 20},
		{Class: "heap", RSSBytes: 4 << 20}, {Class: "anon", RSSBytes: 200 << 20}, {Class: "jvm-heap", RSSBytes: 100 << 20},
		{Class: "kernel", RSSBytes: 4096},
	}
	tests := []struct {
		name  string
		in    Inputs
		check func(t *testing.T, r *Result)
	}{
		{"smaps only", Inputs{Classes: classes}, func(t *testing.T, r *Result) {
			if r.Bytes(CatUnexplained) != (300+4+200+100)<<20-(100<<20) {
				t.Errorf("unexplained %d", r.Bytes(CatUnexplained))
			}
		}},
		{"story 1: malloc retention", Inputs{Classes: classes, Malloc: &MallocEvidence{Source: "m", RetainedFreeBytes: 250 << 20, InUseBytes: 40 << 20, MmapBytes: 10 << 20}},
			func(t *testing.T, r *Result) {
				if r.Bytes(CatMallocFree) != 250<<20 || r.Bytes(CatMallocInUse) != 50<<20 {
					t.Errorf("free %d in use %d", r.Bytes(CatMallocFree), r.Bytes(CatMallocInUse))
				}
			}},
		{"claims beyond what is resident are capped", Inputs{Classes: classes,
			Malloc: &MallocEvidence{Source: "m", RetainedFreeBytes: 10 << 30, InUseBytes: 10 << 30},
			Trace:  &TraceEvidence{Source: "t", Count: 3, AnonResidentBytes: 10 << 30},
			JVM:    &JVMEvidence{DirectUsedBytes: u64(10 << 30), HasNMT: true, NMT: []NMTBrief{{Name: "Class", MallocBytes: 10 << 30, MmapCommittedBytes: 10 << 30}}}},
			func(t *testing.T, r *Result) {
				if r.Bytes(CatUnexplained) != 0 {
					t.Errorf("unexplained %d after claims of everything", r.Bytes(CatUnexplained))
				}
			}},
		{"JVM native inside malloc is not counted twice", Inputs{Classes: classes,
			Malloc: &MallocEvidence{Source: "m", InUseBytes: 100 << 20},
			JVM:    &JVMEvidence{DirectUsedBytes: u64(60 << 20), DirectSource: "jolokia", HasNMT: true, NMT: []NMTBrief{{Name: "GC", MallocBytes: 30 << 20, MmapCommittedBytes: 20 << 20}, {Name: "Other", MallocBytes: 60 << 20}}}},
			func(t *testing.T, r *Result) {
				// direct 60 + NMT malloc 30 fill 90 of malloc's 100 in use.
				if r.Bytes(CatDirect) != 60<<20 || r.Bytes(CatJVMNonHeap) != 50<<20 || r.Bytes(CatMallocInUse) != 10<<20 {
					t.Errorf("direct %d, non-heap %d, malloc in use %d", r.Bytes(CatDirect), r.Bytes(CatJVMNonHeap), r.Bytes(CatMallocInUse))
				}
			}},
	}
	// A snapshot from a later memdiag may name a class this one does not
	// know: its Rss is unexplained, not lost.
	tests = append(tests, struct {
		name  string
		in    Inputs
		check func(t *testing.T, r *Result)
	}{"a class explain does not know", Inputs{Classes: append([]ClassSum{{Class: "gpu", RSSBytes: 7 << 20}}, classes...)}, func(t *testing.T, r *Result) {
		if r.Bytes(CatUnexplained) != (300+4+200+7)<<20 {
			t.Errorf("unexplained %d", r.Bytes(CatUnexplained))
		}
	}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Attribute(&tt.in)
			if got := sum(r); got != r.RSSBytes {
				t.Errorf("categories sum to %d, RSS is %d", got, r.RSSBytes)
			}
			// Every category is measured or said unmeasured where it
			// applies; none measured by nothing is written as 0.
			for _, e := range r.Attribution {
				if e.Source == noSource || e.Confidence == "" {
					t.Errorf("%s is written without a source: %+v", e.Category, e)
				}
			}
			for _, c := range r.Unmeasured {
				if r.Bytes(c) != 0 || !tt.in.applies(c) {
					t.Errorf("%s said unmeasured with %d B (applies %v)", c, r.Bytes(c), tt.in.applies(c))
				}
			}
			if len(r.Attribution)+len(r.Unmeasured) > len(Categories()) {
				t.Errorf("%d categories and %d unmeasured, of %d", len(r.Attribution), len(r.Unmeasured), len(Categories()))
			}
			if r.Bytes(CatFileBacked) != 15<<20 || r.Bytes(CatJVMHeap) != 100<<20 || r.Bytes(CatThreadStacks) != 2<<20+1<<16 {
				t.Errorf("file %d, jvm-heap %d, stacks %d", r.Bytes(CatFileBacked), r.Bytes(CatJVMHeap), r.Bytes(CatThreadStacks))
			}
			tt.check(t, r)
		})
	}
}

func TestRules(t *testing.T) {
	cs := []Change{{Kind: "rss", Name: "rss", Old: 100, New: 115}, {Kind: "category", Name: "malloc-free-retained", Old: 0, New: 300 << 20},
		{Kind: "class", Name: "glibc-arena", Old: 10, New: 5}}
	tests := []struct {
		rule  string
		trips int
	}{
		{"rss:+10%", 1}, {"rss:+20%", 0}, {"malloc-free-retained:+256MiB", 1}, {"malloc-free-retained:+1GiB", 0},
		{"class:glibc-arena:-40%", 1}, {"class:glibc-arena:+1%", 0}, {"category:malloc-free-retained:+1%", 1},
	}
	for _, tt := range tests {
		r, err := ParseRule(tt.rule)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(r.Trips(cs)); got != tt.trips {
			t.Errorf("%s trips %d, want %d", tt.rule, got, tt.trips)
		}
	}
	for _, bad := range []string{"rss", "rss:10%", "rss:+ten%", ":+1%", "rss:+5parsecs"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("ParseRule(%q) accepted", bad)
		}
	}
}

// TestWeighNMTBounded: a JVM's NMT detail lists its committed regions, and
// a hostile one can list a thousand that each cover a terabyte. Weighing
// them must stop with ErrNMTTooMuch, not read pagemap for days.
func TestWeighNMTBounded(t *testing.T) {
	in := &Inputs{JVM: &JVMEvidence{}}
	ms := []pmap.Mapping{{Start: 0x7f0000000000, End: 0x7f0000000000 + 1<<40}}
	ms[0].Set(pmap.FieldRss, 64<<20)
	regions := make([]jmx.NMTRegion, 1000)
	for i := range regions {
		regions[i] = jmx.NMTRegion{Category: "Other", Start: ms[0].Start, End: ms[0].End}
	}
	reads := 0
	err := in.WeighNMT(regions, ms, func(start, end uint64) (uint64, error) { reads++; return 0, nil })
	if !errors.Is(err, ErrNMTTooMuch) || reads > 0 {
		t.Errorf("got %v after %d pagemap reads, want ErrNMTTooMuch before any", err, reads)
	}
}

// TestLeadsBeyondGlibcAndTheJVM: the first finding for the shapes of
// issue 20 that need no live program — evidence from another process, a
// known allocator without statistics, a backend whose RSS is mostly shared
// buffers.
func TestLeadsBeyondGlibcAndTheJVM(t *testing.T) {
	const mib = 1 << 20
	gogc := 100
	for _, c := range []struct {
		name, want string
		in         Inputs
		check      func(t *testing.T, r *Result)
	}{
		{"malloc_info of another process", "evidence-mismatch", Inputs{
			Classes: []ClassSum{{Class: "anon", RSSBytes: 3 * mib, ReadWriteBytes: 4 * mib, SizeBytes: 4 * mib}, {Class: "file-code", RSSBytes: 5 * mib}},
			Malloc:  &MallocEvidence{Source: "other.xml", SystemCurrentBytes: 64 * mib, RetainedFreeBytes: 63 * mib, InUseBytes: mib},
		}, func(t *testing.T, r *Result) {
			if r.Bytes(CatMallocFree) != 0 || r.Bytes(CatMallocInUse) != 0 {
				t.Errorf("another process's malloc_info was joined: %+v", r.Attribution)
			}
		}},
		{"jemalloc without statistics", "allocator-unmeasured", Inputs{Allocator: "jemalloc",
			Classes: []ClassSum{{Class: "anon", RSSBytes: 700 * mib}, {Class: "file-code", RSSBytes: 5 * mib}},
		}, func(t *testing.T, r *Result) {
			for _, f := range r.Findings {
				if f.ID == "anon-unexplained" {
					t.Errorf("jemalloc's memory called mapped directly: %+v", f)
				}
			}
		}},
		{"a PostgreSQL backend", "shared-memory", Inputs{Command: "postgres",
			Classes: []ClassSum{{Class: "shmem", RSSBytes: 530 * mib, PSSBytes: 106 * mib}, {Class: "anon", RSSBytes: 20 * mib, PSSBytes: 20 * mib}, {Class: "file-code", RSSBytes: 40 * mib, PSSBytes: 8 * mib}},
		}, func(t *testing.T, r *Result) {
			if r.PSSBytes != 134*mib || !strings.Contains(r.Findings[0].Summary, "about 5 processes") || !strings.Contains(strings.Join(r.Findings[0].Advice, " "), "shared_buffers") {
				t.Errorf("PSS %d, finding %+v", r.PSSBytes, r.Findings[0])
			}
		}},
		{"a Go heap idle under a distant GOMEMLIMIT", "go-heap-idle", Inputs{
			Classes: []ClassSum{{Class: "go-heap", Mappings: 3, RSSBytes: 520 * mib}, {Class: "file-code", RSSBytes: 5 * mib}},
			Go:      &goruntime.MemStats{HeapSysBytes: 540 * mib, HeapInuseBytes: 20 * mib, HeapIdleBytes: 520 * mib, HeapReleasedBytes: 10 * mib, GOGCPercent: &gogc, MemoryLimitBytes: 4 << 30, Source: "m"},
		}, func(t *testing.T, r *Result) {
			if f := r.Findings[0]; f.Bytes != 510*mib || !strings.Contains(strings.Join(f.Advice, " "), "GOMEMLIMIT (4.0 GiB) is above this heap") {
				t.Errorf("finding %+v", f)
			}
		}},
		{"Node.js Buffers without allocator statistics", "node-external", Inputs{
			Classes: []ClassSum{{Class: "v8-heap", Mappings: 40, RSSBytes: 10 * mib}, {Class: "anon", RSSBytes: 100 * mib}, {Class: "file-code", RSSBytes: 40 * mib}},
			Node:    &nodejs.Memory{HeapTotalBytes: 10 * mib, HeapUsedBytes: 8 * mib, ExternalBytes: 96 * mib, Source: "metrics"},
		}, func(t *testing.T, r *Result) {
			if r.Bytes(CatMallocInUse) != 96*mib || r.Bytes(CatV8Heap) != 10*mib {
				t.Errorf("attribution %+v", r.Attribution)
			}
			for _, f := range r.Findings {
				if f.ID == "anon-unexplained" {
					t.Errorf("Buffers Node.js accounts for called mapped directly: %+v", f)
				}
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := Attribute(&c.in)
			if len(r.Findings) == 0 || r.Findings[0].ID != c.want {
				t.Fatalf("findings %+v, want %s first", r.Findings, c.want)
			}
			if got := sum(r); got != r.RSSBytes {
				t.Errorf("categories sum to %d, RSS %d", got, r.RSSBytes)
			}
			c.check(t, r)
		})
	}
}

// TestSnapshotEscapesControls: a process's name is its own to choose; a
// snapshot, read in terminals, writes C1 controls and format characters
// in it as \uXXXX.
func TestSnapshotEscapesControls(t *testing.T) {
	in := &Inputs{Command: "evil\u202e\u0085", Classes: []ClassSum{{Class: "anon", RSSBytes: 1 << 20}}, Notes: []string{}}
	var b strings.Builder
	if err := NewSnapshot(in, Attribute(in), time.Unix(0, 0), Host{}).Write(&b); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(b.String(), '\u202e') || strings.ContainsRune(b.String(), '\u0085') || !strings.Contains(b.String(), `evil\u202e\u0085`) {
		t.Errorf("snapshot writes the name raw: %q", b.String())
	}
}
