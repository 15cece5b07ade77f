package proc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestFindMappingSelf(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ok, err := (FS{}).HasLibrary(os.Getpid(), filepath.Base(exe))
	if err != nil || !ok {
		t.Errorf("this test binary %s not found among its own mappings: %v, %v", exe, ok, err)
	}
	ok, err = (FS{}).HasLibrary(os.Getpid(), "libjvm.so")
	if err != nil || ok {
		t.Errorf("libjvm.so in a Go test binary: %v, %v", ok, err)
	}
}

func TestFindMappingErrors(t *testing.T) {
	if _, err := (FS{}).FindMapping(1<<30, func(string) bool { return true }); !errors.Is(err, ErrNoProcess) {
		t.Errorf("no such pid: %v", err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "7"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A line longer than any real maps line is an error, not a hang.
	long := make([]byte, 2*maxMapsLine)
	for i := range long {
		long[i] = 'a'
	}
	if err := os.WriteFile(filepath.Join(dir, "7", "maps"), long, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFS(dir).FindMapping(7, func(string) bool { return false }); err == nil {
		t.Error("a 16 KiB line was accepted")
	}
}
