package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// parseOnly runs argv through the command tree with r's run functions in
// place of the real ones, and returns the error. A wantErr must come back
// as a usage error (exit 2) containing it.
func parseOnly(t *testing.T, r runners, args []string, wantErr string) bool {
	t.Helper()
	s, _, _ := testStreams("", false, nil)
	root := newRootCmd(&Deps{Streams: s}, r)
	root.SetArgs(args)
	err := root.Execute()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) || exitCode(err) != ExitUsage {
			t.Fatalf("error %v (exit %d), want usage error containing %q", err, exitCode(err), wantErr)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// goldenFormats are the renderings every command's golden tests cover.
var goldenFormats = []struct {
	ext  string
	args []string
}{{"txt", nil}, {"md", []string{"-o", "md"}}, {"json", []string{"-o", "json"}}}

// checkGolden runs args and compares standard output with
// fixtures/golden/<dir>/<name>; go test ./cmd -update rewrites it.
func checkGolden(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, args...); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden := filepath.Join("..", "fixtures", "golden", dir, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd -update)", err)
	}
	if diff := cmp.Diff(string(want), out.String()); diff != "" {
		t.Errorf("%s differs (-want +got); if intended, go test ./cmd -update:\n%s", golden, diff)
	}
}

// cmpKeys diffs a JSON object's keys against want.
func cmpKeys(want []string, doc map[string]any) string { return cmp.Diff(want, keys(doc)) }
