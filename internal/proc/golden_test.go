package proc

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/internal/golden"
)

// readFixture reads fixtures/proc/name, a file of a real process made by
// fixtures/capture-proc.sh.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := io.ReadAll(golden.Fixture(t, "proc/"+name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParserGoldens: a real process's status, stat, maps, cmdline and
// cgroup (fixtures/proc, made by fixtures/capture-proc.sh) parse to the
// models in testdata/golden.
func TestParserGoldens(t *testing.T) {
	t.Run("mapper.status", func(t *testing.T) {
		ids, err := ParseStatus(golden.Fixture(t, "proc/mapper.status"), "mapper.status", 0)
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.status.json", ids)
	})
	t.Run("mapper.stat", func(t *testing.T) {
		start, state, err := ParseStartTime(readFixture(t, "mapper.stat"), "mapper.stat")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.stat.json", map[string]string{"start": start, "state": state})
	})
	t.Run("mapper.maps", func(t *testing.T) {
		ms, err := ParseMaps(golden.Fixture(t, "proc/mapper.maps"), "mapper.maps")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.maps.json", ms)
	})
	t.Run("mapper.cmdline", func(t *testing.T) {
		args, err := parseCmdline(golden.Fixture(t, "proc/mapper.cmdline"), "mapper.cmdline")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.cmdline.json", args)
	})
	t.Run("mapper.cgroup", func(t *testing.T) {
		gs, err := parseCgroup(golden.Fixture(t, "proc/mapper.cgroup"), "mapper.cgroup")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.cgroup.json", gs)
	})
}

// TestFSCapturedTree: an FS rooted at a tree holding the captured files as
// /proc/4242/… reads what the parsers read from them, so that one root
// handed down reaches every file.
func TestFSCapturedTree(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "4242")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"status", "stat", "maps", "cmdline", "cgroup"} {
		if err := os.WriteFile(filepath.Join(dir, f), readFixture(t, "mapper."+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fs := NewFS(root)
	ids, err := fs.Status(4242)
	if err != nil || ids.Name != "mapper" {
		t.Errorf("Status: %+v, %v", ids, err)
	}
	if _, state, err := fs.StartTime(4242); err != nil || state == "" {
		t.Errorf("StartTime: %q, %v", state, err)
	}
	maps, err := fs.Maps(4242)
	want, _ := ParseMaps(golden.Fixture(t, "proc/mapper.maps"), "mapper.maps")
	if err != nil || !cmp.Equal(maps, want) {
		t.Errorf("Maps: %d mappings, %v; the parser gives %d", len(maps), err, len(want))
	}
	if ok, err := fs.HasLibrary(4242, "libc.so"); err != nil || !ok {
		t.Errorf("HasLibrary(libc.so): %v, %v", ok, err)
	}
	args, err := fs.Cmdline(4242)
	if err != nil || len(args) != 2 || filepath.Base(args[0]) != "mapper" {
		t.Errorf("Cmdline: %q, %v", args, err)
	}
	gs, err := fs.Cgroup(4242)
	if err != nil || len(gs) == 0 {
		t.Errorf("Cgroup: %+v, %v", gs, err)
	}
	if _, err := fs.Maps(4243); !errors.Is(err, ErrNoProcess) {
		t.Errorf("Maps of a pid not in the tree: %v", err)
	}
}
