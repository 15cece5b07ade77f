package cmd

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
)

// startPython runs fixtures/programs/pyobjects.py in mode and returns its
// pid and CPython's own account of its small-object allocator.
func startPython(t *testing.T, mode string) (pid string, own map[string]float64) {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skipf("python3 not found (%v)", err)
	}
	p := testprog.Start(t, python, filepath.Join(testprog.Dir(), "pyobjects.py"), mode)
	own = map[string]float64{}
	for _, l := range p.Lines {
		if k, v, ok := strings.Cut(l, " "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil || n < 0 {
				t.Fatalf("pyobjects.py printed %q: its interpreter's sys._debugmallocstats() lacks that figure", l)
			}
			own[k] = n
		}
	}
	return strconv.Itoa(p.PID()), own
}

// TestExplainPythonObjects: a CPython service holding three million small
// objects. Its pymalloc arenas are plain anonymous mmaps, which smaps alone
// cannot tell from a leak; read from its memory, they are the pymalloc
// category and the first finding is the objects in use, within 1 % of
// what sys._debugmallocstats() says — not "trace who maps it".
func TestExplainPythonObjects(t *testing.T) {
	pid, own := startPython(t, "live")
	e := runExplainJSON(t, "--pid", pid)
	if len(e.Findings) == 0 || e.Findings[0].ID != "pymalloc-live" {
		t.Fatalf("findings %+v, want pymalloc-live first", e.Findings)
	}
	if got := e.Findings[0].Bytes; !within(got, own["allocated"], 0.01) {
		t.Errorf("pymalloc-live %.0f B; CPython says %.0f B in allocated blocks", got, own["allocated"])
	}
	if py := e.bytes("pymalloc"); py < own["allocated"] {
		t.Errorf("pymalloc category %.0f B, less than the %.0f B in use", py, own["allocated"])
	}
	for _, f := range e.Findings {
		if f.ID == "anon-unexplained" {
			t.Errorf("pymalloc's arenas called unexplained: %+v", f)
		}
	}
}

// TestExplainPythonSparse: the same objects, nine in ten dropped. The
// arenas stay, pinned by the survivors: the first finding is the free
// space pymalloc keeps, within 5 % of CPython's available blocks and
// unused pools.
func TestExplainPythonSparse(t *testing.T) {
	pid, own := startPython(t, "sparse")
	e := runExplainJSON(t, "--pid", pid)
	if len(e.Findings) == 0 || e.Findings[0].ID != "pymalloc-retained" {
		t.Fatalf("findings %+v, want pymalloc-retained first", e.Findings)
	}
	if got, want := e.Findings[0].Bytes, own["available"]+own["unused_pools_bytes"]; !within(got, want, 0.05) {
		t.Errorf("pymalloc-retained %.0f B; CPython says %.0f B in available blocks and unused pools", got, want)
	}
}
