package glibcheap

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestFindSymbols compiles a program that defines main_arena and mp_ and
// checks that scanning its symbol table in place finds what
// elf.File.Symbols lists.
func TestFindSymbols(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed: no ELF file to read symbols from")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "syms.c")
	prog := "long main_arena[4] = {1}; long mp_[2] = {2}; long main_arena_x = 3;\nint main(void) { return (int)(main_arena[0] + mp_[0] + main_arena_x); }\n"
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "syms")
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	var wantArena, wantMP uint64
	for _, s := range syms {
		switch s.Name {
		case "main_arena":
			wantArena = s.Value
		case "mp_":
			wantMP = s.Value
		}
	}
	if wantArena == 0 || wantMP == 0 {
		t.Fatalf("the program's symbols lack main_arena or mp_: %#x %#x", wantArena, wantMP)
	}
	a, m, ok := findSymbols(ef)
	if !ok || a != wantArena || m != wantMP {
		t.Errorf("findSymbols = %#x, %#x, %v; elf.File.Symbols says %#x, %#x", a, m, ok, wantArena, wantMP)
	}
}
