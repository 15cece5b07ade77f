package cmd

import (
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/goruntime"
	"github.com/memdiag/memdiag/internal/testprog"
)

// TestExplainGoProgram is issue 20's first row: a Go service that kept
// 256 MiB of small objects, dropped them and collected. Its heap arenas are
// go-heap — never thread-stacks, though goroutine stacks live in them — and
// with its expvar page the first finding is the idle heap the runtime has
// not returned, within a few % of its own MemStats read at the same time;
// without it, the finding names the Go heap and how to expose its account.
func TestExplainGoProgram(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("go not found (%v)", err)
	}
	bin := filepath.Join(t.TempDir(), "goheap")
	if out, err := exec.Command(goTool, "build", "-o", bin, filepath.Join(testprog.Dir(), "goheap")).CombinedOutput(); err != nil {
		t.Fatalf("go build goheap: %v\n%s", err, out)
	}
	p := testprog.Start(t, bin, "256")
	var url string
	for _, l := range p.Lines {
		if u, ok := strings.CutPrefix(l, "expvar "); ok {
			url = u
		}
	}
	pid := strconv.Itoa(p.PID())

	e := runExplainJSON(t, "--pid", pid, "--expvar", url)
	ms, err := goruntime.Fetch(context.Background(), url, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if gh := e.bytes("go-heap"); gh < 200<<20 {
		t.Errorf("go-heap %.0f B, want most of the 256 MiB", gh)
	}
	if ts := e.bytes("thread-stacks"); ts > 8<<20 {
		t.Errorf("thread-stacks %.0f B: the Go heap was taken for stacks", ts)
	}
	if len(e.Findings) == 0 || e.Findings[0].ID != "go-heap-idle" {
		t.Fatalf("findings %+v, want go-heap-idle first", e.Findings)
	}
	if idle := float64(ms.IdleNotReleasedBytes()); !within(e.Findings[0].Bytes, idle, 0.05) {
		t.Errorf("go-heap-idle %.0f B; the program's MemStats say HeapIdle − HeapReleased = %.0f B", e.Findings[0].Bytes, idle)
	}

	e = runExplainJSON(t, "--pid", pid)
	if len(e.Findings) == 0 || e.Findings[0].ID != "go-heap" {
		t.Errorf("without expvar: findings %+v, want go-heap first", e.Findings)
	}

	// trim cannot act on the Go heap, and says why and what does.
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "trim", "--pid", pid); code != 1 || !strings.Contains(errOut.String(), "is a Go program") || !strings.Contains(errOut.String(), "debug.FreeOSMemory()") {
		t.Errorf("trim on a Go program: exit %d, %s", code, errOut)
	}
}
