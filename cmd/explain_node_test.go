package cmd

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
)

// nodeAccounting is what a Node.js program says of its own memory:
// process.memoryUsage() and v8.getHeapStatistics().
type nodeAccounting struct {
	HeapTotal     float64 `json:"heapTotal"`
	HeapUsed      float64 `json:"heapUsed"`
	External      float64 `json:"external"`
	PhysicalBytes float64 `json:"total_physical_size"`
}

// startNode runs fixtures/programs/node/retain.js in mode and returns its
// pid, its metrics URL ("" when prom-client is not installed) and its
// accounting at start.
func startNode(t *testing.T, mode string) (pid, url string, acc nodeAccounting) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skipf("node not found (%v): the Node.js tests need Node.js", err)
	}
	p := testprog.Start(t, node, filepath.Join(testprog.Dir(), "node", "retain.js"), mode)
	for _, l := range p.Lines {
		if u, ok := strings.CutPrefix(l, "metrics "); ok && u != "none" {
			url = u
		}
		if j, ok := strings.CutPrefix(l, "accounting "); ok {
			if err := json.Unmarshal([]byte(j), &acc); err != nil {
				t.Fatalf("retain.js accounting %q: %v", j, err)
			}
		}
	}
	return strconv.Itoa(p.PID()), url, acc
}

// TestExplainNodeHeap: a Node.js service holding a million objects. Its V8
// heap pages are v8-heap, within a few % of what V8 says is resident
// (total_physical_size); without a source the first finding names the V8
// heap and how to expose its accounting; with prom-client's page it is the
// live objects, within a few % of heapUsed.
func TestExplainNodeHeap(t *testing.T) {
	pid, url, acc := startNode(t, "heap")
	e := runExplainJSON(t, "--pid", pid)
	if got := e.bytes("v8-heap"); !within(got, acc.PhysicalBytes, 0.05) {
		t.Errorf("v8-heap %.0f B; V8 says %.0f B of its heap is resident", got, acc.PhysicalBytes)
	}
	if len(e.Findings) == 0 || e.Findings[0].ID != "v8-heap" {
		t.Fatalf("without a source: findings %+v, want v8-heap first", e.Findings)
	}
	if !strings.Contains(strings.Join(e.Findings[0].Advice, " "), "--prometheus") {
		t.Errorf("v8-heap advice %q does not say how to give the accounting", e.Findings[0].Advice)
	}
	for _, c := range []string{"jvm-heap", "go-heap"} {
		if e.has(c) {
			t.Errorf("a Node.js process has a %s row", c)
		}
	}

	if url == "" {
		t.Skip("prom-client is not installed: run npm install in fixtures/programs/node (.ci/run does) for the check against its metrics")
	}
	e = runExplainJSON(t, "--pid", pid, "--prometheus", url)
	if len(e.Findings) == 0 || e.Findings[0].ID != "v8-heap-live" {
		t.Fatalf("with prom-client: findings %+v, want v8-heap-live first", e.Findings)
	}
	if got := e.Findings[0].Bytes; !within(got, acc.HeapUsed, 0.05) {
		t.Errorf("v8-heap-live %.0f B; the program's heapUsed is %.0f B", got, acc.HeapUsed)
	}
}

// TestExplainNodeBuffers: a Node.js service holding 96 MiB of Buffers,
// which Node.js mallocs outside V8's heap. With prom-client's page, the
// first finding is that external memory, as the program counts it, and
// nothing is left unexplained for strace to find.
func TestExplainNodeBuffers(t *testing.T) {
	pid, url, acc := startNode(t, "buffers")
	if url == "" {
		t.Skip("prom-client is not installed: run npm install in fixtures/programs/node (.ci/run does)")
	}
	e := runExplainJSON(t, "--pid", pid, "--prometheus", url)
	if len(e.Findings) == 0 || e.Findings[0].ID != "node-external" {
		t.Fatalf("findings %+v, want node-external first", e.Findings)
	}
	if got := e.Findings[0].Bytes; !within(got, acc.External, 0.05) {
		t.Errorf("node-external %.0f B; the program's external memory is %.0f B", got, acc.External)
	}
	for _, f := range e.Findings {
		if f.ID == "anon-unexplained" {
			t.Errorf("anon-unexplained %+v beside the Buffers Node.js accounts for", f)
		}
	}
}
