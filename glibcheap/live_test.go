package glibcheap_test

import (
	"bytes"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/glibcheap"
	"github.com/memdiag/memdiag/internal/testprog"
)

// mallinfo2Line parses the "mallinfo2 k=v …" line a test program prints.
func mallinfo2Line(t *testing.T, lines []string) glibcheap.Mallinfo2 {
	t.Helper()
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "mallinfo2" {
			continue
		}
		v := map[string]uint64{}
		for _, kv := range fields[1:] {
			k, s, _ := strings.Cut(kv, "=")
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("bad mallinfo2 field %q", kv)
			}
			v[k] = n
		}
		return glibcheap.Mallinfo2{
			Arena: v["arena"], Ordblks: v["ordblks"], Smblks: v["smblks"], Hblks: v["hblks"], Hblkhd: v["hblkhd"],
			Fsmblks: v["fsmblks"], Uordblks: v["uordblks"], Fordblks: v["fordblks"], Keepcost: v["keepcost"],
		}
	}
	t.Fatalf("no mallinfo2 line in %q", lines)
	return glibcheap.Mallinfo2{}
}

// TestMatchesTheProcessOwnAccounting reads the heaps of real programs, in
// every shape mallocdemo makes, and compares them with what the program's
// own glibc said at the same instant: the malloc_info document byte for
// byte, and mallinfo2() field for field.
func TestMatchesTheProcessOwnAccounting(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo")
	for _, c := range []struct {
		mode string
		env  []string
		// arenas is the fewest arenas the shape must have.
		arenas int
	}{
		{mode: "single", arenas: 1},
		{mode: "fastbins", arenas: 1},
		{mode: "story1", arenas: 2},
		{mode: "churn", arenas: 2},
		{mode: "histogram", arenas: 2},
		{mode: "arenas", env: []string{"MALLOC_ARENA_MAX=128"}, arenas: 60},
		{mode: "story1", env: []string{"GLIBC_TUNABLES=glibc.malloc.tcache_count=0"}, arenas: 2},
	} {
		name := c.mode
		if len(c.env) > 0 {
			name += "/" + strings.SplitN(c.env[0], "=", 2)[0]
		}
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "malloc_info.xml")
			p := testprog.StartWith(t, testprog.Options{Env: c.env}, bin, c.mode, out)
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, symbols := range []bool{true, false} {
				h, err := glibcheap.Reader{NoSymbols: !symbols, MaxPause: time.Minute}.Read(p.PID()) // stopped, however loaded the host
				if err != nil {
					t.Fatalf("symbols %v: %v", symbols, err)
				}
				if len(h.Arenas) < c.arenas {
					t.Errorf("symbols %v: %d arenas, want at least %d", symbols, len(h.Arenas), c.arenas)
				}
				var got bytes.Buffer
				if err := h.WriteMallocInfo(&got); err != nil {
					t.Fatal(err)
				}
				if d := cmp.Diff(string(want), got.String()); d != "" {
					t.Errorf("symbols %v: the document differs from the process's own malloc_info (-process +memdiag):\n%s", symbols, d)
				}
				if d := cmp.Diff(mallinfo2Line(t, p.Lines), h.Mallinfo2()); d != "" {
					t.Errorf("symbols %v: mallinfo2 differs (-process +memdiag):\n%s", symbols, d)
				}
				if bySymbols := strings.Contains(h.Found, "debug symbols"); bySymbols != (symbols && debugFileFor(t, h.Library)) {
					t.Errorf("symbols %v: found %s", symbols, h.Found)
				}
				if !h.Stopped || h.Pause.Threads < 1 {
					t.Errorf("symbols %v: stopped %v, %d threads: want every thread stopped", symbols, h.Stopped, h.Pause.Threads)
				}
				t.Logf("symbols %v: %s; %d arenas, paused %v (%d threads), %d reads, %d bytes", symbols, h.Found, len(h.Arenas), h.Pause.Duration, h.Pause.Threads, h.Reads, h.ReadBytes)
			}
		})
	}
}

// debugFileFor reports whether the host has a debug file for lib's
// build-id, as Debian's libc6-dbg installs.
func debugFileFor(t *testing.T, lib string) bool {
	t.Helper()
	f, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, []byte("GNU\x00")); i >= 0 && len(b) >= i+4+20 && b[i-4] == 3 {
			id := hex.EncodeToString(b[i+4 : i+24])
			_, err := os.Stat(filepath.Join(glibcheap.DebugDir, ".build-id", id[:2], id[2:]+".debug"))
			return err == nil
		}
	}
	return false
}

// TestPauseBudget: a heap whose free lists take longer to walk than the
// pause budget is not read with the threads stopped past it: the stopped
// walk is cut short, the threads resume, and the heap is read while the
// process runs — the notes say so, and the figures of an idle process are
// still its own malloc_info's.
func TestPauseBudget(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo")
	out := filepath.Join(t.TempDir(), "malloc_info.xml")
	p := testprog.Start(t, bin, "histogram", out)
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	h, err := glibcheap.Reader{MaxPause: time.Nanosecond}.Read(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	if h.Stopped || !strings.Contains(strings.Join(h.Notes, "\n"), "longer than 1ns, so they were resumed") {
		t.Errorf("stopped %v, notes %q: want the read made while the process ran, and said", h.Stopped, h.Notes)
	}
	if h.Pause.Duration > time.Second {
		t.Errorf("paused %v with a budget of 1 ns", h.Pause.Duration)
	}
	var got bytes.Buffer
	if err := h.WriteMallocInfo(&got); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(string(want), got.String()); d != "" {
		t.Errorf("the document differs from the process's own malloc_info (-process +memdiag):\n%s", d)
	}
}
