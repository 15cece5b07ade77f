package memcg

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the parser goldens under testdata/golden")

// checkGolden compares v, as indented JSON, with testdata/golden/name
// (rewritten with -update): the parser's whole model of a real capture.
func checkGolden(t *testing.T, name string, v any) {
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

// openFixture opens a file under fixtures/.
func openFixture(t *testing.T, name string) *os.File {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "fixtures", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestParserGoldens: the kernel's OOM reports and a cgroup v2 directory in
// fixtures read to the models in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"oom-v1.dmesg", "oom-v2-constructed.dmesg"} {
		t.Run(name, func(t *testing.T) {
			reps, err := ParseOOM(openFixture(t, "cgroup/"+name), name)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".json", reps)
		})
	}
	t.Run("v2", func(t *testing.T) {
		g, err := Read(filepath.Join("..", "fixtures", "cgroup", "v2"))
		if err != nil {
			t.Fatal(err)
		}
		g.Path = "" // where the checkout is
		checkGolden(t, "v2.json", g)
	})
}
