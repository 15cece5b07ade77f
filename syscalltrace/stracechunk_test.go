package syscalltrace

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// straceResult is everything a strace reading gives: the events (copied),
// the skipped lines, and how it ended.
type straceResult struct {
	Events       []Event
	Foreign      int
	FirstForeign int
	Err          string
}

// readStrace reads in with chunks of chunkSize bytes decoded on workers
// goroutines (0: in the caller's).
func readStrace(in []byte, chunkSize, workers int) straceResult {
	s := NewStraceReader(bytes.NewReader(in), "in", 0)
	s.chunkSize, s.Workers = chunkSize, workers
	return collect(s)
}

// collect reads s to its end.
func collect(s *StraceReader) straceResult {
	defer s.Close()
	var res straceResult
	for {
		e, err := s.Next()
		if err != nil {
			if err != io.EOF {
				res.Err = err.Error()
			}
			break
		}
		res.Events = append(res.Events, *e)
	}
	res.Foreign, res.FirstForeign = s.Foreign, s.FirstForeign
	return res
}

// stitchingInputs are traces whose calls, frames and noise cross any cut.
func stitchingInputs(t *testing.T) map[string][]byte {
	t.Helper()
	ins := map[string][]byte{}
	paths, _ := filepath.Glob("../fixtures/traces/*.strace")
	ff, _ := filepath.Glob("../fixtures/traces/leaker-ff/*")
	for _, p := range append(paths, ff...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ins[filepath.Base(p)] = b
	}
	// stderr output: unprefixed lines until the first [pid N] of a task not
	// announced as attached names the traced process.
	ins["origin"] = []byte(strings.Join([]string{
		"mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
		" > /lib/libc.so.6(__mmap+0x13) [0x1019b3]",
		"munmap(0x7f0000000000, 4096strace: Process 700 attached",
		") = 0",
		"[pid   700] mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0 <unfinished ...>",
		"[pid   699] mmap(NULL, 4096, PROT_READ, MAP_SHARED, 3</a b>, 0) = 0x7f0000200000",
		"[pid   700] <... mmap resumed>) = 0x7f0000100000",
		" > /lib/libc.so.6(__mmap+0x13) [0x1019b3]",
		" > /app(leak+0x1) [0x11]",
		"[pid   699] munmap(0x7f0000200000, 4096 <unfinished ...>",
		"[pid   700] read(3, \"x\", 1) = 1",
		" > /lib/libc.so.6(read+0x1) [0x1]",
		"the program's own line",
		"[pid   699] <... munmap resumed>) = 0",
		"+++ exited with 0 +++",
	}, "\n") + "\n")
	// A bad line: the events before it, then the error at its line.
	ins["malformed"] = []byte(strings.Repeat("100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n", 5) +
		"100 munmap(0x7f0000000000, 4096 <unfinished ...>\n200 brk(NULL) = 0x5000\n100 <... munmap resumed>) = garbage\n100 brk(NULL) = 0x5000\n")
	// CRLF, no newline at the end.
	ins["crlf"] = []byte("1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\r\n1 munmap(0x7f0000000000, 4096) = 0")
	return ins
}

func TestStraceChunksStitch(t *testing.T) {
	ins := stitchingInputs(t)
	if out, err := exec.Command("go", "run", "../bench/gentrace", "-size", "300K").Output(); err == nil {
		ins["gentrace"] = out
	} else {
		t.Logf("bench/gentrace: %v (generated churn not checked)", err)
	}
	for name, in := range ins {
		t.Run(name, func(t *testing.T) {
			want := readStrace(in, len(in)+1, 0)
			if len(want.Events) == 0 {
				t.Fatal("no events: the input tests nothing")
			}
			for _, size := range []int{1, 7, 64, 333, 4096} {
				for _, workers := range []int{0, 3} {
					got := readStrace(in, size, workers)
					if diff := cmp.Diff(want, got); diff != "" {
						t.Fatalf("chunks of %d bytes on %d workers differ from one chunk (-want +got):\n%s", size, workers, diff)
					}
				}
			}
		})
	}
}

func TestStraceChunksMalformed(t *testing.T) {
	res := readStrace(stitchingInputs(t)["malformed"], 64, 2)
	if len(res.Events) != 6 || !strings.Contains(res.Err, "in:6") {
		t.Errorf("%d events then %q; want the 6 before the bad line, then an error at in:6 (where the call began)", len(res.Events), res.Err)
	}
}

// A cut never separates a call from its frames, nor a line from the end
// attach noise cut off.
func TestStraceCutKeepsContinuations(t *testing.T) {
	in := "1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000\n" +
		strings.Repeat(" > /lib/libc.so.6(__mmap+0x13) [0x1019b3]\n", 100) +
		"1 munmap(0x7f0000000000, 4096strace: Process 2 attached\n) = 0\n"
	sp := &splitter{r: strings.NewReader(in), size: 1}
	var lines []string
	for {
		var c straceChunk
		sp.fill(&c)
		lines = append(lines, strings.SplitN(string(c.buf), "\n", 2)[0])
		if c.last {
			break
		}
	}
	want := []string{
		"1 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000",
		"1 munmap(0x7f0000000000, 4096strace: Process 2 attached",
	}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("chunks begin (-want +got):\n%s", diff)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestStraceReadErrorAfterEvents(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, workers := range []int{0, 2} {
		s := NewStraceReader(&failingReader{data: []byte("1 brk(NULL) = 0x5000\n1 brk(0x6000) = 0x6000\n"), err: boom}, "in", 0)
		s.Workers = workers
		n := 0
		var err error
		for err == nil {
			_, err = s.Next()
			n++
		}
		var pe *ParseError
		if n != 3 || !errors.Is(err, boom) || !errors.As(err, &pe) || pe.Line != 3 {
			t.Errorf("workers %d: %d calls, then %v; want 2 events, then the read error at in:3", workers, n-1, err)
		}
		s.Close()
	}
}

// stalledReader returns nothing, and no error, for ever.
type stalledReader struct{}

func (stalledReader) Read([]byte) (int, error) { return 0, nil }

func TestStraceStalledReaderEnds(t *testing.T) {
	for _, workers := range []int{0, 2} {
		s := NewStraceReader(io.MultiReader(strings.NewReader("1 brk(NULL) = 0x5000\n"), stalledReader{}), "in", 0)
		s.Workers = workers
		if _, err := s.Next(); err != nil {
			t.Fatalf("workers %d: first event: %v", workers, err)
		}
		if _, err := s.Next(); !errors.Is(err, io.ErrNoProgress) {
			t.Errorf("workers %d: then %v, want io.ErrNoProgress", workers, err)
		}
		s.Close()
	}
}

// A line longer than any strace writes is an error at its line, wherever
// the chunks fall — not a chunk that grows with it.
func TestStraceLongLine(t *testing.T) {
	in := "1 brk(NULL) = 0x5000\n1 mmap(" + strings.Repeat("x", 3<<20) + "\n1 brk(NULL) = 0x5000\n"
	for _, workers := range []int{0, 2} {
		res := readStrace([]byte(in), defaultChunkSize, workers)
		if len(res.Events) != 1 || !strings.Contains(res.Err, "in:2: line longer than 1024 KiB") {
			t.Errorf("workers %d: %d events then %q; want 1, then the long line at in:2", workers, len(res.Events), res.Err)
		}
	}
}

// openCalls against a map, through the switch from its list to its map and
// back, with as many as 200 tasks in a call at once.
func TestOpenCallsMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	var o openCalls
	ref := map[int]int{}
	for step := 0; step < 100000; step++ {
		tid := rng.Intn(200)
		if step%20000 == 0 {
			o.reset()
			clear(ref)
		}
		if rng.Intn(2) == 0 {
			o.put(tid, step)
			ref[tid] = step
			continue
		}
		got, ok := o.take(tid)
		want, wantOK := ref[tid]
		delete(ref, tid)
		if ok != wantOK || got != want {
			t.Fatalf("step %d: take(%d) = %d, %v; want %d, %v", step, tid, got, ok, want, wantOK)
		}
	}
}

// TestStraceStackCacheMatchesParsing reads every input with the decoder's
// cache of frame blocks and without it (each block parsed): the frames, and
// everything else, must be the same.
func TestStraceStackCacheMatchesParsing(t *testing.T) {
	ins := stitchingInputs(t)
	// The same stacks again and again, one cut short, with CRLF.
	var b strings.Builder
	for i := range 50 {
		fmt.Fprintf(&b, "100 mmap(NULL, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = %#x\n", 0x7f0000000000+i*4096)
		b.WriteString(" > /lib/libc.so.6(__mmap+0x13) [0x1019b3]\n")
		if i%3 != 0 {
			b.WriteString(" > /app(leak+0x1) [0x11]\r\n")
		}
		if i%5 == 0 {
			fmt.Fprintf(&b, "100 munmap(%#x, 4096) = 0\n", 0x7f0000000000+i*4096)
			b.WriteString(" > /lib/libc.so.6(__munmap+0x13) [0x1019c3]\n")
		}
	}
	ins["repeated"] = []byte(b.String())
	for name, in := range ins {
		t.Run(name, func(t *testing.T) {
			for _, size := range []int{64, 4096, len(in) + 1} {
				want := readStraceUncached(in, size)
				got := readStrace(in, size, 0)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("chunks of %d bytes: cached frames differ from parsed ones (-parsed +cached):\n%s", size, diff)
				}
			}
		})
	}
}

// readStraceUncached is readStrace on one goroutine with every frame block
// parsed.
func readStraceUncached(in []byte, chunkSize int) straceResult {
	s := NewStraceReader(bytes.NewReader(in), "in", 0)
	s.chunkSize, s.dec.stacks = chunkSize, nil
	return collect(s)
}
