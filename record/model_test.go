package record

import (
	"bytes"
	"math"
	"os"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/syscalltrace"
)

func TestTableMatchesFrees(t *testing.T) {
	tab := newTable(0, 0)
	tab.add(0x1000, 100, 10, 1, fnMalloc)
	tab.add(0x2000, 200, 20, 2, fnMalloc)
	tab.add(0x3000, 300, 30, 2, fnCalloc)
	tab.free(0x2000)
	tab.free(0x9000) // its allocation was never seen
	st := tab.stacks(1030)
	if len(st) != 2 || st[0].ID != 2 || st[0].OutstandingBytes != 300 || st[0].OutstandingCount != 1 || st[0].AllocBytes != 500 ||
		st[0].OldestAge != 1000*time.Nanosecond {
		t.Errorf("stack 2: %+v", st)
	}
	if st[1].ID != 1 || st[1].OutstandingBytes != 100 {
		t.Errorf("stack 1: %+v", st[1])
	}
	if tab.allocs != 3 || tab.frees != 1 || tab.unmatched != 1 {
		t.Errorf("allocs %d frees %d unmatched %d", tab.allocs, tab.frees, tab.unmatched)
	}
}

// TestTableCapSummarisesOldest: past the cap the oldest tenth go, by stack,
// still counted as outstanding; a reused address is not taken for its
// older allocation.
func TestTableCapSummarisesOldest(t *testing.T) {
	tab := newTable(100, 0)
	var dropped []uint64
	for i := uint64(0); i < 101; i++ {
		stack := int32(1)
		if i >= 50 {
			stack = 2
		}
		dropped = append(dropped, tab.add(0x1000+i*16, 10, i+1, stack, fnMalloc)...)
	}
	if len(dropped) != 11 || dropped[0] != 0x1000 {
		t.Fatalf("dropped %d (%#x…), want the 11 oldest", len(dropped), dropped)
	}
	if len(tab.live) != 90 || tab.summarised != 11 || tab.summarisedBytes != 110 {
		t.Errorf("live %d, summarised %d (%d B)", len(tab.live), tab.summarised, tab.summarisedBytes)
	}
	st := tab.stacks(1000)
	var total uint64
	for _, s := range st {
		total += s.OutstandingBytes
		if s.ID == 1 && (s.SummarisedCount != 11 || s.OutstandingCount != 50 || s.OldestAge != 999) {
			t.Errorf("stack 1: %+v", s)
		}
	}
	if total != 1010 {
		t.Errorf("outstanding %d B in all, want 1010 (every allocation, summarised or not)", total)
	}
	// The freed-and-reused address: the queue's stale entry is skipped.
	tab2 := newTable(3, 0)
	tab2.add(0xa, 1, 1, 1, fnMalloc)
	tab2.free(0xa)
	tab2.add(0xa, 1, 2, 1, fnMalloc)
	tab2.add(0xb, 1, 3, 1, fnMalloc)
	tab2.add(0xc, 1, 4, 1, fnMalloc)
	got := tab2.add(0xd, 1, 5, 1, fnMalloc)
	if len(got) != 1 || got[0] != 0xa {
		t.Errorf("dropped %#x, want 0xa (its second allocation, the oldest live)", got)
	}
}

// TestSampleWeight: the unsampled estimate of an allocation's count is
// 1/(1-e^(-size/N)); a Poisson process of mean N over many allocations
// sums back to the bytes allocated.
func TestSampleWeight(t *testing.T) {
	if w := weight(100, 0); w != 1 {
		t.Errorf("unsampled weight %v", w)
	}
	if w := weight(1<<30, 512<<10); math.Abs(w-1) > 1e-9 {
		t.Errorf("a huge allocation is always sampled: weight %v", w)
	}
	if w := weight(1024, 512<<10); math.Abs(w*1024-512<<10) > 1024 {
		t.Errorf("a small allocation stands for about N bytes: %v × 1024", w)
	}
}

func TestTableResetOnExec(t *testing.T) {
	tab := newTable(0, 0)
	tab.add(0x10, 8, 1, 1, fnMalloc)
	tab.add(0x20, 8, 1, 1, fnMalloc)
	if got := tab.reset(); len(got) != 2 {
		t.Errorf("reset returned %v", got)
	}
	if len(tab.stacks(2)) != 0 {
		t.Error("stacks of the old image survive exec")
	}
}

func TestWriteProfileAndFindings(t *testing.T) {
	keeper := []syscalltrace.Frame{{Func: "keeper", Module: "/bin/prog", Addr: 0x401000}, {Func: "main", Module: "/bin/prog", Addr: 0x402000}}
	r := &Result{PID: 42, Comm: "prog", Duration: 2 * time.Second, Final: true,
		Stacks: []Stack{
			{ID: 1, Frames: keeper, OutstandingBytes: 80 << 20, OutstandingCount: 8000, AllocBytes: 80 << 20, AllocCount: 8000, OldestAge: time.Second},
			{ID: 2, Frames: []syscalltrace.Frame{{Func: "churner", Module: "/bin/prog"}}, AllocBytes: 1 << 20, AllocCount: 1000},
			{ID: -14, Unwound: stackError(-14), OutstandingBytes: 10, OutstandingCount: 1, AllocBytes: 10, AllocCount: 1},
		},
		OutstandingBytes: 80<<20 + 10, OutstandingCount: 8001, AllocBytes: 81<<20 + 10}
	var b bytes.Buffer
	if err := WriteProfile(&b, r); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if p.DefaultSampleType != "inuse_space" || len(p.Sample) != 3 || p.Sample[0].Value[3] != 80<<20 || p.Sample[0].Value[1] != 80<<20 {
		t.Errorf("profile: %v", p)
	}
	fs := Findings(r)
	if len(fs) != 1 || fs[0].ID != "malloc-outstanding-by-stack" || fs[0].Bytes != 80<<20 || fs[0].Severity != "medium" {
		t.Fatalf("findings %+v", fs)
	}
	if !bytes.Contains([]byte(fs[0].Summary), []byte("keeper (/bin/prog) ← main")) {
		t.Errorf("summary %q does not name keeper", fs[0].Summary)
	}
}

// TestSymtabOfLibc reads the system's libc: malloc's uprobe offset, and
// the name of an address inside it.
func TestSymtabOfLibc(t *testing.T) {
	const libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
	f, err := os.Open(libc)
	if err != nil {
		t.Skipf("no %s here: %v", libc, err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	st, err := readSymtab(f, fi.Size(), "/usr/lib/debug")
	if err != nil {
		t.Fatal(err)
	}
	off, ok := st.fileOffset("malloc")
	if !ok || st.buildID == "" {
		t.Fatalf("malloc not found (build-id %q)", st.buildID)
	}
	if name, ok := st.lookup(off + 4); !ok || name != "malloc" {
		t.Errorf("lookup(%#x) = %q, %v; want malloc (its public name, not an alias)", off+4, name, ok)
	}
	if _, err := readSymtab(bytes.NewReader([]byte("not an elf file")), 15, ""); err == nil {
		t.Error("garbage read as ELF")
	}
}

func TestSymbolizerFrames(t *testing.T) {
	tab := &symtab{funcs: []symbol{{addr: 0x1000, size: 0x100, name: "keeper"}, {addr: 0x1100, size: 0x10, name: "main"}},
		loads: []segment{{off: 0, vaddr: 0, filesz: 0x10000, exec: true}}}
	s := &symbolizer{}
	s.add(execRange{start: 0x400000, end: 0x410000, offset: 0, path: "/bin/prog", tab: tab})
	got := s.frames([]uint64{0x401010, 0x401100, 0x401200, 0x999999})
	want := []string{"keeper", "keeper", "", ""} // 0x401100 returns into keeper's last call
	for i, f := range got {
		if f.Func != want[i] {
			t.Errorf("frame %d %#x: %q, want %q", i, f.Addr, f.Func, want[i])
		}
	}
	if got[3].Module != "" || got[0].Module != "/bin/prog" || got[0].Addr != 0x1010 || got[3].Addr != 0x999999 {
		t.Errorf("frames %+v %+v: want the offset in the module, the address outside any", got[0], got[3])
	}
}

func TestLibraryKind(t *testing.T) {
	for path, want := range map[string]string{
		"/usr/lib/x86_64-linux-gnu/libc.so.6": "libc", "/lib/libc-2.31.so": "libc", "/usr/lib/libjemalloc.so.2": "jemalloc",
		"/usr/lib/libtcmalloc_minimal.so.4 (deleted)": "tcmalloc", "/usr/lib/libcrypto.so.3": "", "/lib/ld-musl-x86_64.so.1": "musl",
		"/usr/lib/libcap.so.2": "",
	} {
		if got := libraryKind(path); got != want {
			t.Errorf("libraryKind(%q) = %q, want %q", path, got, want)
		}
	}
}

// FuzzReadSymtab: a mapped file is its owner's; whatever it holds, reading
// its symbols returns an error or a table whose lookups stay in bounds.
func FuzzReadSymtab(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/exe"); err == nil && len(b) > 0 {
		// the header and section table of a real file, cut short
		f.Add(b[:min(len(b), 1<<16)])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := readSymtab(bytes.NewReader(b), int64(len(b)), "")
		if err != nil {
			return
		}
		names := map[string]bool{}
		for i, s := range st.funcs {
			if i > 0 && s.addr < st.funcs[i-1].addr {
				t.Fatalf("symbol %d %q at %#x before its predecessor at %#x: lookups search an unsorted table", i, s.name, s.addr, st.funcs[i-1].addr)
			}
			names[s.name] = true
		}
		for _, off := range []uint64{0, 1, 0x1000, uint64(len(b)), math.MaxUint64} {
			if name, ok := st.lookup(off); ok && !names[name] {
				t.Fatalf("offset %#x named %q, a function the table does not hold", off, name)
			}
		}
		if _, ok := st.fileOffset("malloc"); ok && !names["malloc"] {
			t.Fatal("malloc has a file offset but no symbol")
		}
	})
}
