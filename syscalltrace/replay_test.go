package syscalltrace

import (
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"
)

type span struct{ lo, hi uint64 }

func replayString(t *testing.T, trace string, shared bool) *Replay {
	t.Helper()
	r := NewReplay(shared)
	for _, e := range readAll(t, NewStraceReader(strings.NewReader(trace), "in", 0)) {
		r.Apply(e)
	}
	return r
}

func spans(ms []*Mapping) []span {
	out := make([]span, len(ms))
	for i, m := range ms {
		out[i] = span{m.Start, m.End}
	}
	return out
}

func TestReplay(t *testing.T) {
	const A = 0x7f0000000000
	tests := []struct {
		name  string
		trace string
		want  []span
		check func(t *testing.T, r *Replay)
	}{
		{
			name:  "mmap then munmap: nothing outstanding",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n1 munmap(%#x, 8192) = 0\n", A, A),
		},
		{
			name:  "length rounds up to pages",
			trace: fmt.Sprintf("1 mmap(NULL, 5000, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n", A),
			want:  []span{{A, A + 8192}},
		},
		{
			name: "munmap of the middle splits",
			trace: fmt.Sprintf("1 mmap(NULL, 32768, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n1 munmap(%#x, 8192) = 0\n",
				A, A+8192),
			want: []span{{A, A + 8192}, {A + 16384, A + 32768}},
		},
		{
			name: "munmap spanning several mappings, and beyond them",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 munmap(%#x, 28672) = 0\n", A, A+8192, A+16384, A+4096),
			want: []span{{A, A + 4096}},
			check: func(t *testing.T, r *Replay) {
				if r.Stats.PreexistingOps != 1 || r.Stats.PreexistingBytes != 8192 || r.Stats.UnmappedBytes != 20480 {
					t.Errorf("pre-existing %d ops %d B, unmapped %d B", r.Stats.PreexistingOps, r.Stats.PreexistingBytes, r.Stats.UnmappedBytes)
				}
			},
		},
		{
			name: "MAP_FIXED replaces what it covers",
			trace: fmt.Sprintf("1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mmap(%#x, 8192, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_ANONYMOUS, -1, 0) = %#x\n", A, A+4096, A+4096),
			want: []span{{A, A + 4096}, {A + 4096, A + 12288}, {A + 12288, A + 16384}},
		},
		{
			name: "mremap grows and moves; the maker is kept",
			trace: fmt.Sprintf("1 mmap(NULL, 1048576, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mremap(%#x, 1048576, 4194304, MREMAP_MAYMOVE) = %#x\n", A, A, A+0x1000000),
			want: []span{{A + 0x1000000, A + 0x1000000 + 4194304}},
			check: func(t *testing.T, r *Replay) {
				m := r.Outstanding()[0]
				if !m.Grown || m.Line != 1 {
					t.Errorf("grown mapping: %+v", m)
				}
			},
		},
		{
			name: "mremap shrinks in place",
			trace: fmt.Sprintf("1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mremap(%#x, 16384, 4096, 0) = %#x\n", A, A, A),
			want: []span{{A, A + 4096}},
		},
		{
			name: "mremap with MREMAP_DONTUNMAP keeps the old range",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 mremap(%#x, 8192, 8192, MREMAP_MAYMOVE|MREMAP_DONTUNMAP) = %#x\n", A, A, A+0x100000),
			want: []span{{A, A + 8192}, {A + 0x100000, A + 0x100000 + 8192}},
		},
		{
			name:  "failed calls change nothing",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n1 munmap(%#x, 8192) = -1 EINVAL (Invalid argument)\n1 mmap(NULL, 1073741824, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)\n", A, A),
			want:  []span{{A, A + 8192}},
			check: func(t *testing.T, r *Replay) {
				if r.Stats.Failed != 2 {
					t.Errorf("failed %d, want 2", r.Stats.Failed)
				}
			},
		},
		{
			name:  "munmap of a range never seen mapped is pre-existing",
			trace: fmt.Sprintf("1 munmap(%#x, 8192) = 0\n", A),
			check: func(t *testing.T, r *Replay) {
				if r.Stats.PreexistingOps != 1 || r.Stats.PreexistingBytes != 8192 {
					t.Errorf("pre-existing %d ops, %d B", r.Stats.PreexistingOps, r.Stats.PreexistingBytes)
				}
			},
		},
		{
			name:  "madvise releases pages but keeps the mapping",
			trace: fmt.Sprintf("1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n1 madvise(%#x, 8192, MADV_DONTNEED) = 0\n", A, A),
			want:  []span{{A, A + 16384}},
			check: func(t *testing.T, r *Replay) {
				if m := r.Outstanding()[0]; m.ReleasedBytes != 8192 {
					t.Errorf("released %d", m.ReleasedBytes)
				}
			},
		},
		{
			name:  "brk: failure returns the old break",
			trace: "1 brk(NULL) = 0x1000000\n1 brk(0x1021000) = 0x1021000\n1 brk(0x5000000) = 0x1021000\n",
			check: func(t *testing.T, r *Replay) {
				if b := r.LiveBrkBytes(); b != 0x21000 {
					t.Errorf("brk extent %#x, want 0x21000", b)
				}
			},
		},
		{
			name:  "exit of the leader ends the space: its mappings stay outstanding, ended by exit",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n2 +++ exited with 0 +++\n1 +++ exited with 0 +++\n", A),
			want:  []span{{A, A + 8192}},
			check: func(t *testing.T, r *Replay) {
				if m := r.Outstanding()[0]; m.EndedBy != "exit" {
					t.Errorf("ended by %q", m.EndedBy)
				}
			},
		},
		{
			name: "a munmap in flight does not unmap what another thread made meanwhile",
			trace: fmt.Sprintf("2 mmap(NULL, 65536, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"2 munmap(%#x, 65536 <unfinished ...>\n"+
				"1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"2 <... munmap resumed>) = 0\n", A, A, A+32768),
			want: []span{{A + 32768, A + 49152}},
			check: func(t *testing.T, r *Replay) {
				if r.Stats.PreexistingOps != 0 {
					t.Errorf("pre-existing %d", r.Stats.PreexistingOps)
				}
			},
		},
		{
			name: "fork: the child gets its own space; exec ends the old image",
			trace: fmt.Sprintf("1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
				"1 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD) = 9\n"+
				"9 munmap(%#x, 8192) = 0\n"+
				"9 execve(\"/bin/true\", [\"true\"], 0x7ffd /* 5 vars */) = 0\n", A, A),
			want: []span{{A, A + 8192}},
			check: func(t *testing.T, r *Replay) {
				if r.Stats.PreexistingOps != 1 {
					t.Errorf("the child's munmap of inherited memory: pre-existing %d, want 1", r.Stats.PreexistingOps)
				}
				if got := len(r.Spaces()); got != 2 {
					t.Errorf("%d spaces, want 2", got)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replayString(t, tt.trace, true)
			got := spans(r.Outstanding())
			if fmt.Sprint(got) != fmt.Sprint(tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Errorf("outstanding %x, want %x", got, tt.want)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestTimelineIsBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n", 0x10000000+i*8192)
	}
	r := replayString(t, b.String(), true)
	if n := len(r.Timeline()); n == 0 || n >= maxTimeline {
		t.Errorf("timeline has %d points, want 1..%d", n, maxTimeline-1)
	}
	if r.Stats.PeakBytes != 5000*4096 {
		t.Errorf("peak %d", r.Stats.PeakBytes)
	}
}

// overlapping's one descent must find what a scan of every mapping finds,
// whatever the tree's shape: before the first mapping, after the last,
// inside one, across many.
func TestOverlappingMatchesScan(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	r := NewReplay(true)
	s := r.spaceOf(1)
	var all []*Mapping
	for len(all) < 3000 {
		start := uint64(rng.Intn(1<<20)) * pageSize
		m := &Mapping{Start: start, End: start + uint64(1+rng.Intn(8))*pageSize}
		if len(r.overlapping(s, m.Start, m.End)) > 0 {
			continue // the tree holds disjoint ranges
		}
		s.tree.set(m.Start, m)
		all = append(all, m)
	}
	for i := 0; i < 20000; i++ {
		lo := uint64(rng.Intn(1<<20+16)) * pageSize
		if i%3 == 0 {
			lo += uint64(rng.Intn(pageSize)) // not page aligned
		}
		hi := lo + uint64(1+rng.Intn(64))*pageSize
		var want []*Mapping
		for _, m := range all {
			if m.Start < hi && m.End > lo {
				want = append(want, m)
			}
		}
		sort.Slice(want, func(i, j int) bool { return want[i].Start < want[j].Start })
		got := r.overlapping(s, lo, hi)
		if len(got) != len(want) {
			t.Fatalf("[%#x, %#x): %d mappings, a scan finds %d", lo, hi, len(got), len(want))
		}
		for j := range got {
			if got[j] != want[j] {
				t.Fatalf("[%#x, %#x): mapping %d is %#x, a scan finds %#x", lo, hi, j, got[j].Start, want[j].Start)
			}
		}
	}
}

// countingReader counts the events taken from r.
type countingReader struct {
	r Reader
	n int
}

func (c *countingReader) Next() (*Event, error) {
	e, err := c.r.Next()
	if err == nil {
		c.n++
	}
	return e, err
}

// --at: the replay ends with the last event at or before the time, and
// reading stops at the first one after it.
func TestReplayUntilStopsReading(t *testing.T) {
	var lines []string
	for i := 1; i <= 100; i++ {
		lines = append(lines, fmt.Sprintf("7 %d.000000 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x", i, 0x7f0000000000+i*0x10000))
	}
	for _, workers := range []int{0, 2} {
		s := NewStraceReader(strings.NewReader(strings.Join(lines, "\n")+"\n"), "in", 0)
		s.Workers = workers
		src := &countingReader{r: s}
		r := NewReplay(true)
		r.Until, r.HasUntil = 40.5, true
		if err := r.ApplyAll(src); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := len(r.Outstanding()); got != 40 {
			t.Errorf("workers %d: %d outstanding, want the 40 mapped by 40.5 s", workers, got)
		}
		if src.n != 41 {
			t.Errorf("workers %d: %d events read, want 41: up to the first after --at", workers, src.n)
		}
	}
}

// TestKindsDoNotLead: six 64 MiB arena heap reservations (2.4 MiB of them
// resident) beside forty 1 MiB leaked buffers (40 MiB resident). The
// arenas are named as what they are, and the lead — group and finding —
// is the leaking function, with or without resident bytes.
func TestKindsDoNotLead(t *testing.T) {
	libc := "/usr/lib/x86_64-linux-gnu/libc.so.6"
	arenaStack := []Frame{{Func: "__mmap", Module: libc}, {Func: "timer_settime", Module: libc}, {Func: "__default_morecore", Module: libc}, {Func: "malloc", Module: libc}, {Func: "worker", Module: "/opt/app"}}
	leakStack := []Frame{{Func: "__mmap", Module: libc}, {Func: "leak_buffer", Module: "/opt/app"}, {Func: "main", Module: "/opt/app"}}
	var ms []*Mapping
	resident := map[*Mapping]uint64{}
	for i := 0; i < 6; i++ {
		m := &Mapping{Start: uint64(i+1) << 30, End: uint64(i+1)<<30 + 64<<20, Prot: "NONE", FlagsText: "PRIVATE|ANONYMOUS|NORESERVE", Anonymous: true, Frames: arenaStack}
		ms, resident[m] = append(ms, m), 400<<10
	}
	for i := 0; i < 40; i++ {
		m := &Mapping{Start: 0x7f0000000000 + uint64(i)<<21, End: 0x7f0000000000 + uint64(i)<<21 + 1<<20, Prot: "READ|WRITE", FlagsText: "PRIVATE|ANONYMOUS", Anonymous: true, Frames: leakStack}
		ms, resident[m] = append(ms, m), 1<<20
	}
	for _, res := range []map[*Mapping]uint64{resident, nil} {
		gs := Groups(ms, GroupStack, res)
		if gs[0].Kind != "" || !strings.Contains(StackLabel(gs[0].Frames), "leak_buffer") {
			t.Errorf("resident %v: lead group %q (%s)", res != nil, StackLabel(gs[0].Frames), gs[0].Kind)
		}
		if gs[1].Kind != KindArenaHeap || !strings.HasPrefix(StackLabel(gs[1].Frames), "worker") {
			t.Errorf("resident %v: arena group kind %q, label %q (libc's frames should be skipped)", res != nil, gs[1].Kind, StackLabel(gs[1].Frames))
		}
		fs := Findings(ms, gs, &Stats{MappedBytes: 6 * 64 << 20}, "t", res != nil)
		if len(fs) != 1 || !strings.Contains(fs[0].Summary, "leak_buffer") || !strings.Contains(fs[0].Summary, "40 mappings") {
			t.Errorf("resident %v: finding %+v", res != nil, fs)
		}
	}
}

// TestReplayCommits: mprotect making writable part of a range reserved
// before the trace (glibc growing an arena heap) makes that part
// outstanding, with the mprotect's stack; PROT_NONE gives it back; what
// the trace mapped itself, and other protections, are left alone.
func TestReplayCommits(t *testing.T) {
	const A = 0x7f0000000000
	trace := fmt.Sprintf(""+
		"1 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
		// writable over the known mapping and 3 pages past it: only those commit
		"1 mprotect(%#x, 20480, PROT_READ|PROT_WRITE) = 0\n"+
		" > /usr/lib/x86_64-linux-gnu/libc.so.6(__mprotect+0xb) [0x1]\n"+
		" > /usr/lib/x86_64-linux-gnu/libz.so.1(inflateInit2_+0x20) [0x2]\n"+
		// read-only (RELRO) and a guard page: nothing moves
		"1 mprotect(%#x, 4096, PROT_READ) = 0\n"+
		"1 mprotect(%#x, 4096, PROT_NONE) = 0\n"+
		// a second commit, then given back in part
		"1 mprotect(%#x, 16384, PROT_READ|PROT_WRITE) = 0\n"+
		"1 mprotect(%#x, 8192, PROT_NONE) = 0\n"+
		// a failed one changes nothing
		"1 mprotect(%#x, 4096, PROT_READ|PROT_WRITE) = -1 ENOMEM (Cannot allocate memory)\n",
		A, A, A+1<<20, A, A+1<<21, A+1<<21+8192, A+1<<22)
	r := replayString(t, trace, true)
	var got []span
	var committed uint64
	for _, m := range r.Outstanding() {
		got = append(got, span{m.Start, m.End})
		if m.Committed {
			committed += m.Len()
		}
	}
	want := []span{{A, A + 8192}, {A + 8192, A + 20480}, {A + 1<<21, A + 1<<21 + 8192}}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("outstanding %x, want %x", got, want)
	}
	if committed != 12288+8192 || r.Stats.CommittedBytes != 12288+16384 || r.Stats.DecommittedBytes != 8192 {
		t.Errorf("committed outstanding %d, stats committed %d decommitted %d", committed, r.Stats.CommittedBytes, r.Stats.DecommittedBytes)
	}
	for _, m := range r.Outstanding() {
		if m.Start == A+8192 && (!m.Committed || len(m.Frames) != 2 || StackLabel(m.Frames) == "" || m.Kind() != "") {
			t.Errorf("commit %+v (label %q, kind %q): want the mprotect's stack, no kind", m, StackLabel(m.Frames), m.Kind())
		}
	}
}

// Mappings Outstanding handed out stay as they were while the replay goes
// on (record takes a snapshot, then replays further): later munmaps neither
// cut them in place nor reuse them for later mmaps.
func TestReplayOutstandingStable(t *testing.T) {
	const A, B = 0x7f0000000000, 0x7f0000100000
	events := readAll(t, NewStraceReader(strings.NewReader(fmt.Sprintf(
		"1 mmap(NULL, 16384, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
			"1 mmap(NULL, 8192, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n"+
			"1 munmap(%#x, 4096) = 0\n1 munmap(%#x, 8192) = 0\n"+
			"1 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n", A, B, A, B, B)), "in", 0))
	r := NewReplay(true)
	for _, e := range events[:2] {
		r.Apply(e)
	}
	snap := r.Outstanding()
	want := spans(snap)
	for _, e := range events[2:] {
		r.Apply(e)
	}
	if got := spans(snap); fmt.Sprint(got) != fmt.Sprint(want) || snap[1].Prot != "READ" {
		t.Errorf("snapshot changed: %v (prot %q), was %v", got, snap[1].Prot, want)
	}
	if got, want := spans(r.Outstanding()), []span{{A + 4096, A + 16384}, {B, B + 4096}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outstanding = %v, want %v", got, want)
	}
}
