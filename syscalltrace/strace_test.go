package syscalltrace

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// readAll copies every event r yields: each is valid only until the next.
func readAll(t *testing.T, r Reader) []*Event {
	t.Helper()
	var out []*Event
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		c := *e
		out = append(out, &c)
	}
}

// TestStraceDetachedCall reads the calls strace was in when it let go of
// the process (strace -p stopped): their outcome is not in the trace, so
// they are no events, and neither the trace nor what follows is an error.
func TestStraceDetachedCall(t *testing.T) {
	in := strings.Join([]string{
		"25414 14:26:33.892721 mprotect(0x7f6eb403a000, 28672, PROT_READ|PROT_WRITE <detached ...>",
		"25415 14:26:33.892722 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>",
		"25415 14:26:33.892723 <... mmap resumed> <detached ...>",
		"25416 14:26:33.892724 munmap(0x7f0000000000, 4096) = 0",
	}, "\n") + "\n"
	es := readAll(t, NewStraceReader(strings.NewReader(in), "in", 0))
	if len(es) != 1 || es[0].Call != CallMunmap || es[0].TID != 25416 {
		t.Fatalf("got %d events (%+v), want the munmap alone", len(es), es)
	}
}

func TestStraceLineForms(t *testing.T) {
	mmap := Event{Call: CallMmap, Name: "mmap", Len: 8192, Prot: "READ|WRITE", Flags: FlagAnonymous, FlagsText: "PRIVATE|ANONYMOUS", FD: -1, Ret: 0x7f860c3f9000}
	tests := []struct {
		name    string
		in      string
		tid     int
		time    float64
		hasTime bool
		dur     float64
	}{
		{"-f -tt -T to a file", "5189  01:18:08.432201 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000 <0.000015>", 5189, 1*3600 + 18*60 + 8.432201, true, 0.000015},
		{"-f to stderr", "[pid  5384] mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000", 5384, 0, false, 0},
		{"main process on stderr", "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000", 0, 0, false, 0},
		{"-ttt", "1795310294.731326 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000", 0, 1795310294.731326, true, 0},
		{"-r", "     0.000123 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000", 0, 0.000123, true, 0},
		{"-t", "12 01:18:08 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f860c3f9000", 12, 3600 + 18*60 + 8, true, 0},
		{"padded result", "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)        = 0x7f860c3f9000", 0, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := readAll(t, NewStraceReader(strings.NewReader(tt.in+"\n"), "in", 0))
			if len(es) != 1 {
				t.Fatalf("%d events", len(es))
			}
			want := mmap
			want.TID, want.Time, want.HasTime, want.Duration = tt.tid, tt.time, tt.hasTime, tt.dur
			if diff := cmp.Diff(&want, es[0], cmpopts.IgnoreFields(Event{}, "Line", "EnterKey", "DoneKey"), cmpopts.EquateApprox(0, 1e-6)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestStraceSplitCallsNoiseAndFrames(t *testing.T) {
	in := strings.Join([]string{
		"[pid  5383] munmap(0x7faddc600000, 60817408 <unfinished ...>",
		"[pid  5382] mprotect(0x7faddbe00000, 8388608, PROT_READ|PROT_WRITE) = 0",
		"[pid  5383] <... munmap resumed>)       = 0",
		"[pid  5384] mmap(NULL, 134217728, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0strace: Process 5385 attached",
		" <unfinished ...>",
		"[pid  5384] <... mmap resumed> )         = 0x7fadd3c00000",
		" > /usr/lib/x86_64-linux-gnu/libc.so.6(__mmap+0x13) [0x1019b3]",
		" > /tmp/leaker(leak_buffer+0xe) [0x1365]",
		" > /tmp/leaker() [0x1101]",
		" > unexpected_backtracing_error [0x7f0000]",
		"the program's own stderr line",
		"[pid  5384] mmap(NULL, 1073741824, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 ENOMEM (Cannot allocate memory)",
		"[pid  5384] mremap(0x7f2e8b9b6000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_DONTUNMAP, 0x7f0000000000) = 0x7f0000000000",
		"[pid  5384] madvise(0x7f2e8b9b6000, 4096, MADV_DONTNEED) = 0",
		"[pid  5384] mmap(NULL, 4096, PROT_READ, MAP_SHARED, 3</data/file with spaces.bin>, 0x1000) = 0x7f0000100000",
		"[pid  5384] clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x7f, stack=0x7f, stack_size=0x7fff80}, 88) = 5386",
		"--- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---",
		"[pid  5384] +++ exited with 0 +++",
		"+++ killed by SIGKILL +++",
	}, "\n") + "\n"
	r := NewStraceReader(strings.NewReader(in), "in", 0)
	es := readAll(t, r)
	if len(es) != 10 {
		for _, e := range es {
			t.Logf("%+v", e)
		}
		t.Fatalf("%d events, want 10", len(es))
	}
	// Events come in order of completion: the mprotect of line 2 first.
	if e := es[0]; e.Call != CallMprotect || e.TID != 5382 || e.Addr != 0x7faddbe00000 || e.Len != 8388608 || e.Prot != "READ|WRITE" {
		t.Errorf("mprotect: %+v", e)
	}
	es = es[1:]
	if e := es[0]; e.Call != CallMunmap || e.TID != 5383 || e.Len != 60817408 || e.Line != 1 || e.EnterKey != 1 || e.DoneKey != 3 {
		t.Errorf("split munmap: %+v", e)
	}
	mm := es[1]
	if mm.Call != CallMmap || mm.Ret != 0x7fadd3c00000 || mm.Len != 134217728 || mm.Line != 4 {
		t.Errorf("mmap split by attach noise: %+v", mm)
	}
	wantFrames := []Frame{
		{Func: "__mmap", Module: "/usr/lib/x86_64-linux-gnu/libc.so.6", Addr: 0x1019b3},
		{Func: "leak_buffer", Module: "/tmp/leaker", Addr: 0x1365},
		{Func: "", Module: "/tmp/leaker", Addr: 0x1101},
		{Func: "unexpected_backtracing_error", Addr: 0x7f0000},
	}
	if diff := cmp.Diff(wantFrames, mm.Frames); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
	if e := es[2]; !e.Failed || e.Errno != "ENOMEM" {
		t.Errorf("failed mmap: %+v", e)
	}
	if e := es[3]; e.Call != CallMremap || e.Flags != FlagMayMove|FlagDontUnmap || e.NewLen != 8192 || e.NewAddr != 0x7f0000000000 {
		t.Errorf("mremap: %+v", e)
	}
	if e := es[4]; e.Call != CallMadvise || e.Advice != "DONTNEED" {
		t.Errorf("madvise: %+v", e)
	}
	if e := es[5]; e.FD != 3 || e.Path != "/data/file with spaces.bin" || e.Offset != 0x1000 || e.Flags != FlagShared {
		t.Errorf("file mmap with -y: %+v", e)
	}
	if e := es[6]; e.Call != CallClone || e.Ret != 5386 || e.Flags&FlagCloneVM == 0 {
		t.Errorf("clone3: %+v", e)
	}
	if e := es[7]; e.Call != CallExit || e.TID != 5384 || e.ExitStatus != "exited with 0" {
		t.Errorf("exit: %+v", e)
	}
	if e := es[8]; e.Call != CallExit || e.TID != 5383 || e.ExitStatus != "killed by SIGKILL" { // unprefixed: the traced process, first seen as [pid 5383]
		t.Errorf("kill: %+v", e)
	}
	if r.Foreign != 1 || r.FirstForeign != 11 {
		t.Errorf("foreign lines %d (first %d), want 1 at line 11", r.Foreign, r.FirstForeign)
	}
}

func TestStraceErrors(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"mmap(NULL, lots, PROT_READ, MAP_PRIVATE, 3, 0) = 0x1000\n", "in:1: mmap: strconv.ParseUint"},
		{"munmap(0x1000, 4096 = 0\n", "in:1: unbalanced parentheses"},
		{"munmap(0x1000, 4096) 0\n", "in:1: expected \" = result\""},
		{"munmap(0x1000, 4096) = banana\n", "in:1: result \"banana\" is not a number"},
		{"[pid 12 munmap(0x1000, 4096) = 0\n", "in:1: unclosed [pid"},
		{"ok\n<... munmap resumed)\n", "in:2: expected \"<... NAME resumed>\""},
	}
	for _, tt := range tests {
		_, err := NewStraceReader(strings.NewReader(tt.in), "in", 0).Next()
		var pe *ParseError
		if err == nil || !errors.As(err, &pe) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want ErrMalformed containing %q", tt.in, err, tt.want)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := map[string]Format{
		"5189  01:18:08.431869 brk(NULL)         = 0x55fb868aa000 <0.000009>\n":                                                          FormatStrace,
		"[pid  5384] munmap(0x7faddc600000, 60817408 <unfinished ...>\n":                                                                 FormatStrace,
		"strace: Process 5383 attached\n":                                                                                                FormatStrace,
		"     0.000 ( 0.024 ms): mmapdemo/6006 brk()                                                                 = 0x55782a6d3000\n": FormatPerfTrace,
		"2 01:18:08.432201234 0 my app (5189) < mmap res=139893049651200 addr=0 length=1048576\n":                                        FormatSysdig,
		`{"evt.cpu":0,"evt.dir":"<","evt.info":"res=0 addr=7F3B10677000 length=4096","evt.type":"munmap","thread.tid":9}` + "\n":         FormatSysdigJSON,
		"memdiag call=mmap pid=1 tid=1 enter=1 exit=2 addr=0x0 len=8192 prot=3 flags=34 fd=-1 off=0 ret=139880895221760\n":               FormatBpftrace,
	}
	for in, want := range tests {
		got, err := Detect([]byte(in), "in")
		if err != nil || got != want {
			t.Errorf("Detect(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := Detect([]byte("hello\nworld\n"), "in"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("plain text: %v, want ErrUnrecognized", err)
	}
}

func TestPerfTraceForms(t *testing.T) {
	in := strings.Join([]string{
		"     0.208 ( 0.017 ms): mmapdemo/6006 mmap(len: 8192, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)           = 0x7fdff5b52000",
		"     0.320 ( 0.018 ms): web content/6006 mmap(addr: 0x7fdff598d000, len: 1400832, prot: READ|EXEC, flags: PRIVATE|FIXED|DENYWRITE, fd: 4, off: 0x26000) = 0x7fdff598d000",
		"     1.901 (         ): mmapdemo/6007 munmap(addr: 0x7fdff4151000, len: 65536)                           ...",
		"     1.943 ( 0.020 ms): mmapdemo/6008 mmap(len: 131072, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)         = 0x7fdff4131000",
		"                                       __GI___mmap64 (inlined)",
		"                                       worker (/opt/demo/mmapdemo)",
		"     1.901 ( 0.699 ms): mmapdemo/6007  ... [continued]: munmap())                                           = 0",
		"     1.336 ( 0.023 ms): mmapdemo/6006 mremap(addr: 0x7fdff5864000, old_len: 1048576, new_len: 4194304, flags: MAYMOVE) = 0x7fdff5400000",
		"     1.423 ( 0.011 ms): mmapdemo/6006 mmap(len: 1073741824, prot: READ|WRITE, flags: PRIVATE|ANONYMOUS)     = -1 ENOMEM (Cannot allocate memory)",
		"LOST 3 events!",
		"     1.229 ( 0.043 ms): mmapdemo/6006 madvise(start: 0x7fdff5864000, len_in: 524288, behavior: MADV_DONTNEED) = 0",
		"     0.655 ( 0.012 ms): mmapdemo/6006 brk(brk: 0x55782a6f4000)                                              = 0x55782a6f4000",
	}, "\n") + "\n"
	r := NewPerfTraceReader(strings.NewReader(in), "in")
	es := readAll(t, r)
	if len(es) != 8 {
		t.Fatalf("%d events, want 8", len(es))
	}
	// Events come back in time order (perf writes CPU buffers in turn).
	for i := 1; i < len(es); i++ {
		if es[i].Time < es[i-1].Time {
			t.Errorf("event %d at %v before %v", i, es[i].Time, es[i-1].Time)
		}
	}
	byName := map[string]*Event{}
	for _, e := range es {
		byName[e.Name+"/"+e.Comm] = e
	}
	if e := byName["mmap/web content"]; e == nil || e.TID != 6006 || e.Flags != FlagFixed || e.FD != 4 || e.Offset != 0x26000 {
		t.Errorf("comm with a space: %+v", e)
	}
	if e := byName["munmap/mmapdemo"]; e == nil || e.Addr != 0x7fdff4151000 || e.Len != 65536 || e.DoneKey-e.EnterKey < 0.000698 {
		t.Errorf("continued munmap: %+v", e)
	}
	for _, e := range es {
		if e.TID == 6008 && len(e.Frames) != 2 {
			t.Errorf("call-graph frames: %+v", e.Frames)
		}
	}
	if r.Lost != 3 {
		t.Errorf("lost %d, want 3", r.Lost)
	}
}

// TestParseStraceFrameCPlusPlus: a C++ symbol's own parentheses do not
// split the frame (issue 12: func "unsigned long, bool)", module
// "…libjvm.so(os::pd_reserve_memory").
func TestParseStraceFrameCPlusPlus(t *testing.T) {
	for _, tc := range []struct{ in, module, fn string }{
		{" > /usr/lib/jvm/lib/server/libjvm.so(os::pd_reserve_memory(unsigned long, bool)+0x2a) [0xd5c3ea]",
			"/usr/lib/jvm/lib/server/libjvm.so", "os::pd_reserve_memory(unsigned long, bool)"},
		{" > /usr/lib/x86_64-linux-gnu/libc.so.6(mmap64+0x13) [0x1019b3]", "/usr/lib/x86_64-linux-gnu/libc.so.6", "mmap64"},
		{" > /tmp/leaker() [0x1234]", "/tmp/leaker", ""},
		{" > /lib/libz.so.1(inflateInit2_+0x9c) [0x4ac]", "/lib/libz.so.1", "inflateInit2_"},
		{" > unexpected_backtracing_error [0x7f]", "", "unexpected_backtracing_error"},
	} {
		f := parseStraceFrame(strings.TrimPrefix(tc.in, " > "))
		if f.Module != tc.module || f.Func != tc.fn {
			t.Errorf("%q: module %q func %q, want %q %q", tc.in, f.Module, f.Func, tc.module, tc.fn)
		}
	}
}

// The -tt fast path reads every stamp as the general one does, to the bit.
func TestClockMicrosMatchesParseStraceTime(t *testing.T) {
	for _, s := range []string{"00:00:00.000000", "01:00:43.641052", "23:59:59.999999", "99:99:99.999999", "12:34:56.000001", "07:08:09.100000"} {
		got, ok := clockMicros(s + " mmap(")
		want, wok := parseStraceTime(s)
		if !ok || !wok || got != want {
			t.Errorf("%s: fast %v (%v), general %v (%v)", s, got, ok, want, wok)
		}
	}
	x := uint64(88172645463325252) // xorshift: stamps across the whole range
	for i := 0; i < 100000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		s := fmt.Sprintf("%02d:%02d:%02d.%06d", x%100, x>>8%100, x>>16%100, x>>24%1000000)
		if got, _ := clockMicros(s + " "); got != mustTime(t, s) {
			t.Fatalf("%s: fast %v, general %v", s, got, mustTime(t, s))
		}
	}
	for _, s := range []string{"12:34:56.12345 x", "12:34:56.1234567 ", "12:34:5a.123456 ", "12:34:56.123456", "1234:56.123456 x"} {
		if _, ok := clockMicros(s); ok {
			t.Errorf("%q read as a -tt stamp", s)
		}
	}
}

func mustTime(t *testing.T, s string) float64 {
	t.Helper()
	v, ok := parseStraceTime(s)
	if !ok {
		t.Fatalf("%s: not a stamp", s)
	}
	return v
}

// TestParseMicrosMatchesParseDecimal: -T's fast reading gives parseDecimal's
// value, and its answer on every shape it hands back.
func TestParseMicrosMatchesParseDecimal(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, ok := parseMicros(s)
		want, wok := parseDecimal(s)
		if got != want || ok != wok {
			t.Fatalf("%q: fast %v (%v), general %v (%v)", s, got, ok, want, wok)
		}
	}
	for _, s := range []string{"0.000000", "0.000009", "0.999999", "1.000001", "12.345678", "99999.000012", "123456.000012",
		"0.00001", "0.0000123", "0.00000a", "a.000001", "", ".000001", "0", "1e-06", "-0.000001", "0.000001 "} {
		check(s)
	}
	x := uint64(88172645463325252)
	for i := 0; i < 100000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		check(fmt.Sprintf("%d.%06d", x%100000>>(x%17), x>>24%1000000))
	}
}
