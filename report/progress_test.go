package report

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressReportsAndClears(t *testing.T) {
	var out syncBuffer
	p := StartProgress(&out, "reading x", 4<<20)
	n, err := io.Copy(io.Discard, p.Wrap(strings.NewReader(strings.Repeat("x", 1<<20))))
	if err != nil || n != 1<<20 {
		t.Fatal(n, err)
	}
	time.Sleep(700 * time.Millisecond)
	p.Stop()
	got := out.String()
	if !strings.Contains(got, "memdiag: reading x: 1.0 MiB of 4.0 MiB (25.0 %)") {
		t.Errorf("progress line missing: %q", got)
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("progress not cleared at the end: %q", got)
	}
}

// TestProgressOf shows nothing for an input under ProgressMinBytes, and
// counts what is read of a larger one.
func TestProgressOf(t *testing.T) {
	var b bytes.Buffer
	start := ProgressOf(&b, "reading x")
	if wrap, stop := start(ProgressMinBytes - 1); wrap != nil {
		t.Error("progress for a small input")
	} else {
		stop()
	}
	wrap, stop := start(ProgressMinBytes)
	if wrap == nil {
		t.Fatal("no progress for a large input")
	}
	if n, _ := io.Copy(io.Discard, wrap(strings.NewReader("abc"))); n != 3 {
		t.Errorf("read %d bytes through the wrapper, want 3", n)
	}
	stop()
}
