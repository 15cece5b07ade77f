package nodejs

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json from the fixtures")

const fixture = "../fixtures/prometheus/prom-client.prom"

// TestParsePromClient reads a real prom-client page: the figures are the
// page's own, and the golden holds every field.
func TestParsePromClient(t *testing.T) {
	page, err := os.ReadFile(fixture)
	if err != nil {
		t.Fatal(err)
	}
	if !Recognize(page) {
		t.Fatal("a prom-client page is not recognised")
	}
	m, err := ParsePrometheus(bytes.NewReader(page), "prom-client.prom")
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapTotalBytes != 466948096 || m.ExternalBytes != 64972818 || m.Version != "v20.20.2" {
		t.Errorf("heap total %d, external %d, version %q: not the page's", m.HeapTotalBytes, m.ExternalBytes, m.Version)
	}
	var spaces uint64
	for _, s := range m.Spaces {
		spaces += s.TotalBytes
	}
	if spaces != m.HeapTotalBytes {
		t.Errorf("Σ space totals %d != heap total %d", spaces, m.HeapTotalBytes)
	}
	got, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "prom-client.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("parse differs from %s (go test -update rewrites it):\n%s", golden, got)
	}
}

// TestParsePrefixed: collectDefaultMetrics({prefix: "app_"}) prefixes every
// name.
func TestParsePrefixed(t *testing.T) {
	page := "app_nodejs_heap_size_total_bytes 1000\napp_nodejs_heap_size_used_bytes 600\napp_nodejs_external_memory_bytes 50\n"
	m, err := ParsePrometheus(strings.NewReader(page), "p")
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapTotalBytes != 1000 || m.HeapUsedBytes != 600 || m.ExternalBytes != 50 || m.FreeBytes() != 400 {
		t.Errorf("%+v", m)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct{ name, page, want string }{
		{"jvm page", "jvm_memory_used_bytes{area=\"heap\"} 5\n", "no Node.js heap metrics"},
		{"used without total", "nodejs_heap_size_used_bytes 5\n", "no Node.js heap metrics"},
		{"total without used", "nodejs_heap_size_total_bytes 5\n", "nodejs_heap_size_used_bytes is missing"},
		{"used above total", "nodejs_heap_size_total_bytes 5\nnodejs_heap_size_used_bytes 6\n", "not one reading"},
		{"negative", "nodejs_heap_size_total_bytes -5\nnodejs_heap_size_used_bytes 1\n", "whole number of bytes"},
		{"fraction", "nodejs_heap_size_total_bytes 5.5\nnodejs_heap_size_used_bytes 1\n", "whole number of bytes"},
		{"NaN", "nodejs_heap_size_total_bytes NaN\nnodejs_heap_size_used_bytes 1\n", "whole number of bytes"},
		{"space without label", "nodejs_heap_size_total_bytes 5\nnodejs_heap_size_used_bytes 1\nnodejs_heap_space_size_used_bytes 1\n", "without a space label"},
		{"not text", "{}", "p: "},
	} {
		_, err := ParsePrometheus(strings.NewReader(tc.page), "p")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := ParsePrometheus(strings.NewReader("jvm_x 1\n"), "p"); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("a page without Node.js metrics: %v, want ErrUnrecognized", err)
	}
}

// FuzzParsePrometheus: any page parses or fails with an error naming it;
// what parses is recognised and one consistent reading (used ≤ total,
// free = total − used, each space once).
func FuzzParsePrometheus(f *testing.F) {
	if page, err := os.ReadFile(fixture); err == nil {
		f.Add(string(page))
	}
	f.Add("nodejs_heap_size_total_bytes 1000\nnodejs_heap_size_used_bytes 600\n")
	f.Add("x_nodejs_heap_size_total_bytes 1e3\nx_nodejs_heap_size_used_bytes 1\nnodejs_heap_space_size_total_bytes{space=\"old\"} 7\n")
	f.Fuzz(func(t *testing.T, page string) {
		m, err := ParsePrometheus(strings.NewReader(page), "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz: ") {
				t.Fatalf("error %q does not name the input", err)
			}
			return
		}
		if !Recognize([]byte(page)) {
			t.Fatalf("parsed a page Recognize refuses: %+v", m)
		}
		if m.HeapUsedBytes > m.HeapTotalBytes || m.FreeBytes() != m.HeapTotalBytes-m.HeapUsedBytes {
			t.Fatalf("inconsistent reading %+v", m)
		}
		for i := 1; i < len(m.Spaces); i++ {
			if m.Spaces[i-1].Name >= m.Spaces[i].Name {
				t.Fatalf("spaces not in name order, or twice: %+v", m.Spaces)
			}
		}
	})
}
