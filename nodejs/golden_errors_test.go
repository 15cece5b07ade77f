package nodejs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParserGoldenErrors: prom-client's real page damaged by the test (a
// sample made a word, the used-heap family dropped, the used heap made
// larger than the total) gives the error texts in
// testdata/errors.golden.json, each naming its input. (This package keeps
// its own -update flag and golden, so internal/golden's is not linked in.)
func TestParserGoldenErrors(t *testing.T) {
	b, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	cases := map[string]string{
		"notnumber": strings.Replace(page, "nodejs_heap_size_used_bytes 427857448", "nodejs_heap_size_used_bytes many", 1),
		"nouse":     strings.Replace(page, "nodejs_heap_size_used_bytes 427857448\n", "", 1),
		"usedabove": strings.Replace(page, "nodejs_heap_size_used_bytes 427857448", "nodejs_heap_size_used_bytes 466948097", 1),
		"notnodejs": "process_heap_bytes 1\n",
	}
	got := map[string]string{}
	for name, in := range cases {
		_, err := ParsePrometheus(strings.NewReader(in), "prom-client-"+name+".prom")
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		got[name] = err.Error()
	}
	out, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, '\n')
	path := filepath.Join("testdata", "errors.golden.json")
	if *update {
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if want, err := os.ReadFile(path); err != nil || string(want) != string(out) {
		t.Errorf("errors differ from %s (go test -update rewrites it): %v\n%s", path, err, out)
	}
}
