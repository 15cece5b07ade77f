package elfinfo

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// FuzzSectionNames: the Go check reads the target's executable, which its
// user writes: any bytes give names or an error, never a panic, and never
// a read beyond the bounds.
func FuzzSectionNames(f *testing.F) {
	if self, err := os.ReadFile("/proc/self/exe"); err == nil && len(self) > 0 {
		f.Add(self[:min(len(self), 1<<16)])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := SectionNames(bytes.NewReader(b))
		if err == nil && len(names) > maxSections {
			t.Fatalf("%d names, more than the %d sections allowed", len(names), maxSections)
		}
	})
}

func TestSectionNamesOfThisBinary(t *testing.T) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := SectionNames(f)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == ".go.buildinfo"
	}
	if !found {
		t.Errorf("no .go.buildinfo among this Go test binary's sections %v", names)
	}
}

// TestProberBoundsHangingOpens: an executable whose open hangs (a stalled
// FUSE mount, simulated by an opener that blocks) is probed once however
// often it is asked, other executables at most MaxPending at a time, and
// the probes end when the opens return.
func TestProberBoundsHangingOpens(t *testing.T) {
	release := make(chan struct{})
	p := NewProber(func(string) (File, error) {
		<-release
		return nil, os.ErrNotExist
	})
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		_, err := p.Check("/hung/exe", time.Millisecond)
		want := ErrPending
		if i == 0 {
			want = ErrSlow
		}
		if !errors.Is(err, want) || !errors.Is(err, ErrSlow) {
			t.Fatalf("probe %d: %v, want %v (and ErrSlow: gdbinject refuses on it)", i, err, want)
		}
	}
	for i := 0; i < 50; i++ {
		_, _ = p.Check(fmt.Sprintf("/hung/other-%d", i), time.Millisecond)
	}
	if n := p.Pending(); n != MaxPending {
		t.Errorf("%d probes pending, want %d", n, MaxPending)
	}
	if grew := runtime.NumGoroutine() - before; grew > MaxPending {
		t.Errorf("%d more goroutines after 100 probes, want at most %d", grew, MaxPending)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for p.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := p.Pending(); n != 0 {
		t.Errorf("%d probes still pending after the opens returned", n)
	}
	if _, err := p.Check("/hung/exe", time.Second); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after the hang: %v, want the open's own error", err)
	}
}
