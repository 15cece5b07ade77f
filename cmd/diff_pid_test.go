package cmd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDiffOfTwoProcesses: snapshots of different pids are not one
// process's growth; diff says so loudly, in the table and the JSON.
func TestDiffOfTwoProcesses(t *testing.T) {
	b, err := os.ReadFile("../fixtures/demo/story1.snapshot.json")
	if err != nil {
		t.Fatal(err)
	}
	pid := regexp.MustCompile(`"pid": [0-9]+`)
	if !pid.Match(b) {
		t.Fatal("the demo snapshot has no pid")
	}
	dir := t.TempDir()
	other := filepath.Join(dir, "other.json")
	if err := os.WriteFile(other, pid.ReplaceAll(b, []byte(`"pid": 999999`)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"table", "json"} {
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, "diff", "../fixtures/demo/story1.snapshot.json", other, "-o", format); code != 0 {
			t.Fatalf("diff -o %s: exit %d: %s", format, code, errOut)
		}
		if !strings.Contains(out.String(), "different processes") || !strings.Contains(out.String(), "pid 999999") {
			t.Errorf("diff -o %s does not say the snapshots are of two processes:\n%s", format, out)
		}
	}
}
