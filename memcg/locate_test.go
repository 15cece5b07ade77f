package memcg

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
	"github.com/memdiag/memdiag/internal/proc"
)

// TestLocateCapturedTree finds the memory cgroup named by a real
// process's /proc/PID/cgroup (fixtures/proc/mapper.cgroup, a hybrid
// host's: v1 controllers and the unified hierarchy), read through a
// proc.FS rooted at a tree that holds it, in a cgroup mount laid out the
// same way.
func TestLocateCapturedTree(t *testing.T) {
	procRoot, sys := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(procRoot, "4242"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(golden.Fixture(t, "proc/mapper.cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(procRoot, "4242", "cgroup"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	fsys := proc.NewFS(procRoot)
	const path = "/process_api/aaaba057f30fcad9cafb32f18966d1e4" // its memory line's
	// No v1 memory group under sys, nor a v2 one: nothing to read.
	if _, _, _, err := Locate(fsys, sys, 4242); !errors.Is(err, ErrNoMemoryCgroup) {
		t.Fatalf("an empty cgroup mount: %v, want ErrNoMemoryCgroup", err)
	}
	// The unified hierarchy's group is the root ("0::/").
	if err := os.WriteFile(filepath.Join(sys, "memory.current"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dir, p, v, err := Locate(fsys, sys, 4242); err != nil || dir != sys || p != "/" || v != 2 {
		t.Errorf("v2 only: %q %q v%d %v, want %q / v2", dir, p, v, err, sys)
	}
	// The v1 memory hierarchy wins where it is mounted.
	v1 := filepath.Join(sys, "memory", path)
	if err := os.MkdirAll(v1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "memory.usage_in_bytes"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if dir, p, v, err := Locate(fsys, sys, 4242); err != nil || dir != v1 || p != path || v != 1 {
		t.Errorf("v1: %q %q v%d %v, want %q %q v1", dir, p, v, err, v1, path)
	}
	if _, _, _, err := Locate(fsys, sys, 4243); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a pid not in the tree: %v", err)
	}
}
