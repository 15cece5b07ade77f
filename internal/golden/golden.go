// Package golden is the parser goldens' one helper, for tests only: a
// package's parse of a capture in fixtures/, as indented JSON, compared
// with testdata/golden/NAME and rewritten by `go test -update`.
package golden

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// update is the test binary's -update flag: registered here, once, for
// every package whose tests use this one.
var update = flag.Bool("update", false, "rewrite the parser goldens under testdata/golden")

// JSON compares v, as indented JSON, with testdata/golden/name of the
// package under test (rewritten with -update).
func JSON(t testing.TB, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the parse of its capture (go test -update rewrites it; review the diff):\n%s", path, firstDiff(want, got))
	}
}

// firstDiff shows the first line where want and got part.
func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, wl, gl)
		}
	}
	return ""
}

// Fixture opens fixtures/name of the module, from any package directory
// in it (a test runs in its package's directory).
func Fixture(t testing.TB, name string) *os.File {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod above the test's directory to find fixtures/%s from", name)
		}
		dir = parent
	}
	f, err := os.Open(filepath.Join(dir, "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Text is fixtures/name of the module, read whole: a capture for a test to
// damage (cut it, replace a figure) and check the error it gives.
func Text(t testing.TB, name string) string {
	t.Helper()
	b, err := io.ReadAll(Fixture(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
