package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
)

// TestPmapNeverAttaches: like pmap(1), memdiag pmap only reads. On a JVM
// without --attach it starts no attach listener (no socket appears, no
// trigger is made) and says how to class the heap.
func TestPmapNeverAttaches(t *testing.T) {
	cwd := t.TempDir()
	p := testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: []string{"-Xmx64m"}, Args: []string{"8", "1", "1", filepath.Join(cwd, "m.bin")},
		Options: testprog.Options{Dir: cwd}})
	pid := strconv.Itoa(p.PID())
	start := time.Now()
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "pmap", pid); code != 0 {
		t.Fatalf("pmap exit %d: %s", code, errOut)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("pmap took %v", took)
	}
	for _, path := range []string{"/tmp/.java_pid" + pid, filepath.Join(cwd, ".attach_pid"+pid), "/tmp/.attach_pid" + pid} {
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("%s exists: pmap attached", path)
		}
	}
	if rest := p.Finish(t); strings.Contains(rest, "Full thread dump") {
		t.Error("the JVM printed a thread dump: pmap signalled it")
	}
}

// TestRequestedCaptureFails: a --capture-malloc-info that cannot be done
// (here: a statically linked target) fails snapshot, the CI command,
// unless --best-effort; explain goes on and says so on stderr.
func TestRequestedCaptureFails(t *testing.T) {
	bin := testprog.Build(t, "mallocdemo", "-static")
	p := testprog.Start(t, bin, "single", filepath.Join(t.TempDir(), "x.xml"))
	pid := strconv.Itoa(p.PID())

	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "snapshot", "--pid", pid, "--capture-malloc-info"); code != ExitError {
		t.Errorf("snapshot exit %d, want %d", code, ExitError)
	}
	if !strings.Contains(errOut.String(), "statically linked") || !strings.Contains(errOut.String(), "--best-effort") || out.Len() > 0 {
		t.Errorf("snapshot: stdout %d bytes, stderr %s", out.Len(), errOut)
	}

	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "snapshot", "--pid", pid, "--capture-malloc-info", "--best-effort"); code != 0 {
		t.Errorf("snapshot --best-effort exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "warning: malloc_info") || !strings.Contains(out.String(), "statically linked") {
		t.Errorf("snapshot --best-effort: stderr %q; the note must be inside too", errOut)
	}

	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "explain", "--pid", pid, "--capture-malloc-info"); code != 0 {
		t.Errorf("explain exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut.String(), "warning: malloc_info") || !strings.Contains(out.String(), "statically linked") {
		t.Errorf("explain: stderr %q, table without the failure:\n%s", errOut, out)
	}
	if strings.Contains(errOut.String(), "attaching gdb") {
		t.Errorf("explain announced gdb although the target was refused: %s", errOut)
	}
}

// TestHeapNearMaxOnG1: G1 is the default collector (and Kafka's). A heap
// at 92 % of -Xmx must lead the findings, from hsperfdata alone and with
// attach; when hsperfdata's G1 maximum was doubled it never fired.
func TestHeapNearMaxOnG1(t *testing.T) {
	p := testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: []string{"-XX:+UseG1GC", "-Xmx256m"},
		Args: []string{"236", "1", "1", filepath.Join(t.TempDir(), "m.bin")}})
	truth := p.Values()
	for _, mode := range []string{"--no-attach", "--timeout=20s"} {
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, "explain", "--pid", strconv.Itoa(p.PID()), mode, "-o", "json"); code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, code, errOut)
		}
		var doc struct {
			Findings []struct {
				ID, Summary string
			} `json:"findings"`
		}
		if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Findings) == 0 || doc.Findings[0].ID != "heap-near-max" || !strings.Contains(doc.Findings[0].Summary, "of its 256.0 MiB maximum") {
			t.Errorf("%s: findings %+v; the JVM says heap used %d of max %d", mode, doc.Findings, truth["heap_used"], truth["heap_max"])
		}
	}
}
