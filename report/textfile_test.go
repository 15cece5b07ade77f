package report

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memdiag/memdiag/proctop"
)

// TestTextfileLoop: the exposition is rewritten every cycle, whole (a
// reader never sees a half-written file), nothing else is left in the
// directory, and a cycle that fails keeps the last good file.
func TestTextfileLoop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var cycles atomic.Int32
	done := make(chan error, 1)
	go func() {
		done <- KeepTextfile(ctx, dir, "memdiag_top.prom", 20*time.Millisecond, io.Discard, func(w io.Writer) error {
			n := cycles.Add(1)
			if n == 3 {
				return os.ErrDeadlineExceeded // one failed cycle
			}
			s, err := proctop.Read(proctop.Options{})
			if err != nil {
				return err
			}
			return WriteTop(w, FormatOpenMetrics, &TopView{Scan: s}, Style{})
		})
	}()
	for cycles.Load() < 6 {
		b, err := os.ReadFile(filepath.Join(dir, "memdiag_top.prom"))
		if err == nil && !strings.HasSuffix(string(b), "# EOF\n") {
			t.Fatalf("a reader saw a partial exposition (%d bytes)", len(b))
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("left in the directory: %v", entries)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "memdiag_top.prom"))
	if !strings.Contains(string(b), `memdiag_process_resident_bytes{pid="`+strconv.Itoa(os.Getpid())+`"`) {
		t.Errorf("this test's own process is not in the exposition")
	}
	if err := KeepTextfile(context.Background(), filepath.Join(dir, "missing"), "x.prom", time.Second, io.Discard, nil); err == nil {
		t.Error("a missing directory is not refused")
	}
}
