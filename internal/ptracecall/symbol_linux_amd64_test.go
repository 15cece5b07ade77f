//go:build linux && amd64

package ptracecall

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/memdiag/memdiag/internal/proc"
)

// tinyLib builds a shared object exporting f, or returns nil without gcc.
func tinyLib(tb testing.TB) []byte {
	tb.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return nil
	}
	dir := tb.TempDir()
	src, lib := filepath.Join(dir, "tiny.c"), filepath.Join(dir, "tiny.so")
	if err := os.WriteFile(src, []byte("int f(void) { return 1; }\nint d = 3;\n"), 0o644); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-nostdlib", "-O1", "-o", lib, src).CombinedOutput(); err != nil {
		tb.Fatalf("gcc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(lib)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// fakeSegs maps a file at base as the loader lays a small library out:
// everything at offset 0, readable and executable.
func fakeSegs(base uint64) []proc.Mapping {
	return []proc.Mapping{{Start: base, End: base + 1<<24, Perms: "r-xp", Inode: 1, Path: "/lib/tiny.so"}}
}

func TestResolveTinyLib(t *testing.T) {
	lib := tinyLib(t)
	if lib == nil {
		t.Skip("no gcc")
	}
	const base = 0x7f0000000000
	addr, err := resolve(bytes.NewReader(lib), int64(len(lib)), fakeSegs(base), "f")
	if err != nil {
		t.Fatal(err)
	}
	if addr <= base || addr >= base+uint64(len(lib)) {
		t.Errorf("f at %#x, not in the library mapped at %#x", addr, uint64(base))
	}
	if _, err := resolve(bytes.NewReader(lib), int64(len(lib)), fakeSegs(base), "d"); !errors.Is(err, ErrSymbol) {
		t.Errorf("data symbol d: %v, want ErrSymbol", err)
	}
	// A mapping that is not executable where the function lies is refused:
	// the address must be one the process could run.
	segs := fakeSegs(base)
	segs[0].Perms = "r--p"
	if _, err := resolve(bytes.NewReader(lib), int64(len(lib)), segs, "f"); !errors.Is(err, ErrSymbol) {
		t.Errorf("f in a non-executable mapping: %v, want ErrSymbol", err)
	}
}

// FuzzResolve: the mapped file is its owner's to write: any bytes give an
// address inside the mappings or an error, never a panic.
func FuzzResolve(f *testing.F) {
	if lib := tinyLib(f); lib != nil {
		f.Add(lib, "f")
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"), "f")
	f.Fuzz(func(t *testing.T, b []byte, name string) {
		const base = 0x7f0000000000
		segs := fakeSegs(base)
		addr, err := resolve(bytes.NewReader(b), int64(len(b)), segs, name)
		if err == nil && (addr < segs[0].Start || addr >= segs[0].End) {
			t.Fatalf("address %#x outside the mapping %#x-%#x", addr, segs[0].Start, segs[0].End)
		}
	})
}
