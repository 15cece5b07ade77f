package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := Write(path, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }); err != nil {
		t.Fatal(err)
	}
	// A failed write leaves the old content and nothing beside it.
	boom := errors.New("boom")
	if err := Write(path, 0o644, func(w io.Writer) error { io.WriteString(w, "half"); return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	b, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(dir)
	fi, _ := os.Stat(path)
	if string(b) != "one" || len(entries) != 1 || fi.Mode().Perm() != 0o644 {
		t.Errorf("content %q, %d entries, mode %v", b, len(entries), fi.Mode())
	}
}
