package report

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/internal/termsafe"
)

// KeepTextfile keeps dir/name current for a node_exporter textfile
// collector: write runs at once and then every interval, each time into a
// temporary file renamed over the old one, so the collector reads a whole
// exposition or the previous one. The first failure ends the loop (a
// wrong directory); later ones are said on errOut and the next cycle
// tries again. It returns when ctx ends (SIGINT, SIGTERM).
func KeepTextfile(ctx context.Context, dir, name string, interval time.Duration, errOut io.Writer, write func(io.Writer) error) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("--textfile %s: not a directory (%v)", dir, err)
	}
	path := filepath.Join(dir, name)
	cycle := func() error {
		return atomicfile.Write(path, 0o644, write)
	}
	if err := cycle(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := cycle(); err != nil {
				fmt.Fprintf(errOut, "memdiag: writing %s: %s (trying again in %v)\n", termsafe.Escape(path), termsafe.Escape(err.Error()), interval)
			}
		}
	}
}
