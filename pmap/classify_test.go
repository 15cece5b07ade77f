package pmap

import (
	"strings"
	"testing"
)

const mib = 1 << 20

// anon builds an unnamed anonymous private mapping.
func anon(start, size uint64, perms string) Mapping {
	return Mapping{Start: start, End: start + size, Perms: perms, Dev: "00:00"}
}

func named(start, size uint64, perms, name string, inode uint64) Mapping {
	m := anon(start, size, perms)
	m.Name, m.Inode = name, inode
	return m
}

func classes(ms []Mapping) []Class {
	cs := make([]Class, len(ms))
	for i := range ms {
		cs[i] = ms[i].Class
	}
	return cs
}

func TestClassify(t *testing.T) {
	const base = 0x7f0000000000 // 64 MiB-aligned
	tests := []struct {
		name  string
		ms    []Mapping
		hints Hints
		want  []Class
	}{
		{
			name: "arena heap with its reserve",
			ms:   []Mapping{anon(base, 1*mib, "rw-p"), anon(base+1*mib, 63*mib, "---p")},
			want: []Class{ClassGlibcArena, ClassGlibcArena},
		},
		{
			name: "heaps merged by the kernel: 64 MiB full + partial, then reserve",
			ms:   []Mapping{anon(base, 70*mib, "rw-p"), anon(base+70*mib, 58*mib, "---p")},
			want: []Class{ClassGlibcArena, ClassGlibcArena},
		},
		{
			name: "fully grown heap counts only when the process shows reserved heaps",
			ms: []Mapping{
				anon(base, 128*mib, "rw-p"),
				anon(base+192*mib, 2*mib, "rw-p"), anon(base+194*mib, 62*mib, "---p"),
			},
			want: []Class{ClassGlibcArena, ClassGlibcArena, ClassGlibcArena},
		},
		{
			name:  "a Go program's heap arena has glibc's geometry but is not glibc's",
			ms:    []Mapping{anon(base, 4*mib, "rw-p"), anon(base+4*mib, 60*mib, "---p")},
			hints: Hints{GoProgram: true},
			want:  []Class{ClassGoHeap, ClassGoHeap},
		},
		{
			name: "a Go heap used from mid-reservation, holding goroutine stacks, is go-heap, not a stack",
			ms: []Mapping{anon(base, 20*mib, "---p"), anon(base+20*mib, 272*mib, "rw-p"), anon(base+292*mib, 92*mib, "---p"),
				named(base+1024*mib, 2*mib, "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 7)},
			hints: Hints{GoProgram: true, StackPointers: map[uint64]int{base + 100*mib: 12}},
			want:  []Class{ClassGoHeap, ClassGoHeap, ClassGoHeap, ClassFileCode},
		},
		{
			name: "a cgo program's small glibc arena heaps stay glibc's",
			ms: []Mapping{anon(base, 132*1024, "rw-p"), anon(base+132*1024, 64*mib-132*1024, "---p"),
				named(base+1024*mib, 2*mib, "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", 7)},
			hints: Hints{GoProgram: true},
			want:  []Class{ClassGlibcArena, ClassGlibcArena, ClassFileCode},
		},
		{
			name: "a Node.js process's V8 pages (256 KiB-aligned below 2^46, each with a ---p rest) and JIT code space",
			ms: []Mapping{named(0x400000, 26*mib, "r-xp", "/usr/bin/node", 9), anon(0x400000+26*mib, 256*1024, "rw-p"),
				anon(0x5eed200000, 256*1024, "rw-p"), anon(0x5eed240000, 256*1024, "---p"),
				anon(0x0a818ea80000, 264*1024, "rw-p"), anon(0x230936ec0000, 52*1024, "r--p"),
				anon(0x3fea2de00000+4096, 256*1024, "rw-p"),
				anon(base+4096, 240*1024, "rwxp"), anon(base+1024*mib, 2*mib, "rw-p")},
			want: []Class{ClassFileCode, ClassAnon, ClassV8Heap, ClassGuard, ClassV8Heap, ClassV8Heap, ClassAnon, ClassV8Heap, ClassAnon},
		},
		{
			name: "the same shape outside Node.js is plain anonymous memory",
			ms:   []Mapping{named(0x400000, 2*mib, "r-xp", "/usr/bin/python3", 9), anon(0x5eed200000, 256*1024, "rw-p"), anon(base+4096, 240*1024, "rwxp")},
			want: []Class{ClassFileCode, ClassAnon, ClassAnon},
		},
		{
			name: "a lone aligned 64 MiB anonymous mapping is not called an arena",
			ms:   []Mapping{anon(base, 64*mib, "rw-p")},
			want: []Class{ClassAnon},
		},
		{
			name: "unaligned rw-p with ---p after it is not an arena",
			ms:   []Mapping{anon(base+4096, 1*mib, "rw-p"), anon(base+4096+1*mib, 63*mib-4096, "---p")},
			want: []Class{ClassAnon, ClassGuard},
		},
		{
			name: "reserve not ending on a 64 MiB boundary is not an arena reserve",
			ms:   []Mapping{anon(base, 1*mib, "rw-p"), anon(base+1*mib, 10*mib, "---p")},
			want: []Class{ClassAnon, ClassGuard},
		},
		{
			name: "named anonymous memory is never an arena",
			ms:   []Mapping{named(base, 1*mib, "rw-p", "[anon:cache]", 0), anon(base+1*mib, 63*mib, "---p")},
			want: []Class{ClassAnon, ClassGuard},
		},
		{
			name: "pthread stack layout: guard below an 8 MiB rw-p",
			ms:   []Mapping{anon(0x7f3edb666000, 4096, "---p"), anon(0x7f3edb667000, 8*mib, "rw-p")},
			want: []Class{ClassGuard, ClassThreadStack},
		},
		{
			name: "rw-p after a large PROT_NONE reservation is not a stack",
			ms:   []Mapping{anon(0x7f3edb000000, 4*mib, "---p"), anon(0x7f3edb400000, 8*mib, "rw-p")},
			want: []Class{ClassGuard, ClassAnon},
		},
		{
			name:  "stack pointers name thread stacks without the pattern",
			ms:    []Mapping{anon(0x7f3edb000000, 2*mib, "rw-p"), anon(0x7f3edb200000, 2*mib, "rw-p")},
			hints: Hints{StackPointers: map[uint64]int{0x7f3edb1ff000: 42}, MainTID: 41},
			want:  []Class{ClassThreadStack, ClassAnon},
		},
		{
			name: "pseudo-names, files and shared memory",
			ms: []Mapping{
				named(0x1000, 4096, "r-xp", "/usr/bin/x", 7),
				named(0x2000, 4096, "rw-p", "/usr/bin/x", 7),
				named(0x3000, 4096, "rw-p", "[heap]", 0),
				named(0x4000, 4096, "rw-s", "/dev/zero (deleted)", 1025),
				named(0x5000, 4096, "rw-s", "/memfd:jit (deleted)", 1026),
				named(0x6000, 4096, "rw-s", "/SYSV00000000 (deleted)", 3),
				named(0x7000, 4096, "rw-s", "/dev/shm/seg", 9),
				named(0x8000, 4096, "rw-s", "/data/file with spaces.bin", 10),
				named(0x9000, 4096, "r--p", "/usr/lib/libc.so.6", 11),
				named(0xa000, 4096, "---p", "/usr/lib/libc.so.6", 11),
				named(0xb000, 4096, "r-xp", "[vdso]", 0),
				named(0xc000, 4096, "r--p", "[vvar]", 0),
				named(0xd000, 4096, "rw-p", "[stack]", 0),
				named(0xe000, 4096, "rw-p", "[stack:1234]", 0),
			},
			want: []Class{
				ClassFileCode, ClassFileData, ClassHeap, ClassShmem, ClassShmem, ClassShmem, ClassShmem,
				ClassFileData, ClassFileData, ClassGuard, ClassKernel, ClassKernel, ClassStack, ClassThreadStack,
			},
		},
		{
			name:  "a region from other evidence wins",
			ms:    []Mapping{anon(base, 1*mib, "rw-p"), anon(base+1*mib, 63*mib, "---p"), anon(base+64*mib, 256*mib, "rw-p")},
			hints: Hints{Regions: []Region{{Start: base + 64*mib, End: base + 320*mib, Class: "jvm-heap", Reason: "GC.heap_info range"}}},
			want:  []Class{ClassGlibcArena, ClassGlibcArena, "jvm-heap"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Classify(tt.ms, tt.hints)
			got := classes(tt.ms)
			for i := range tt.want {
				if got[i] != tt.want[i] {
					t.Errorf("mapping %d (%#x %s %q): class %q (%s), want %q",
						i, tt.ms[i].Start, tt.ms[i].Perms, tt.ms[i].Name, got[i], tt.ms[i].Reason, tt.want[i])
				}
				if tt.ms[i].Reason == "" {
					t.Errorf("mapping %d has no reason", i)
				}
			}
		})
	}
}

func TestClassifyReasonsCarryEvidence(t *testing.T) {
	const base = 0x7f0000000000
	ms := []Mapping{anon(base, 70*mib, "rw-p"), anon(base+70*mib, 58*mib, "---p")}
	Classify(ms, Hints{})
	if !strings.Contains(ms[0].Reason, "×2, merged") {
		t.Errorf("merged heap reason %q should say it spans 2 heaps", ms[0].Reason)
	}
	if !strings.Contains(ms[1].Reason, "0x7f0000000000") {
		t.Errorf("reserve reason %q should name its heap", ms[1].Reason)
	}
	sp := []Mapping{anon(0x1000000, 2*mib, "rw-p")}
	Classify(sp, Hints{StackPointers: map[uint64]int{0x1100000: 77}})
	if !strings.Contains(sp[0].Reason, "thread 77") {
		t.Errorf("stack reason %q should name the thread", sp[0].Reason)
	}
}

func TestSummarize(t *testing.T) {
	ms := []Mapping{anon(0x1000, 4096, "rw-p"), anon(0x3000, 8192, "rw-p"), named(0x9000, 4096, "r-xp", "/bin/x", 3)}
	ms[0].Set(FieldRss, 4096)
	ms[1].Set(FieldRss, 8192)
	ms[2].Set(FieldRss, 4096)
	ms[2].Set(FieldPss, 1024)
	Classify(ms, Hints{})
	s := Summarize(ms)
	if s.Totals.Mappings != 3 || s.Totals.SizeBytes != 16384 || s.Totals.Bytes(FieldRss) != 16384 {
		t.Errorf("totals: %d mappings, size %d, rss %d; want 3, 16384, 16384", s.Totals.Mappings, s.Totals.SizeBytes, s.Totals.Bytes(FieldRss))
	}
	if len(s.Classes) != 2 || s.Classes[0].Class != ClassAnon || s.Classes[0].Bytes(FieldRss) != 12288 {
		t.Fatalf("classes %+v: want anon (12288 B RSS) first, then file-code", s.Classes)
	}
	if pss, ok := s.Classes[0].Value(FieldPss); ok {
		t.Errorf("anon class has Pss %d, but none of its mappings had one", pss)
	}
	if pss, ok := s.Totals.Value(FieldPss); !ok || pss != 1024 {
		t.Errorf("total Pss = %d, %v; want 1024, true", pss, ok)
	}
}

func TestValidate(t *testing.T) {
	ms := []Mapping{anon(0x2000, 4096, "rw-p"), anon(0x1000, 4096, "rw-p")}
	ms[0].Set(FieldRss, 8192)
	ms[0].Set(FieldPss, 16384)
	w := strings.Join(Validate(ms), "\n")
	for _, want := range []string{"Rss 8 kB exceeds its size 4 kB", "Pss 16 kB exceeds Rss 8 kB", "overlaps or precedes"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
}
