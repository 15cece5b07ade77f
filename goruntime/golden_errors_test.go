package goruntime

import (
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldenErrors: the real expvar and Prometheus pages damaged by
// the test (cut, a figure made a word) give the error texts in
// testdata/golden, each naming its input.
func TestParserGoldenErrors(t *testing.T) {
	expvar, prom := golden.Text(t, "goruntime/expvar.json"), golden.Text(t, "goruntime/prometheus-go-collector.txt")
	cases := map[string]string{
		"expvar-cut":       expvar[:len(expvar)/2],
		"expvar-notnumber": strings.Replace(expvar, `"HeapSys":284852224`, `"HeapSys":"many"`, 1),
		"prom-notnumber":   strings.Replace(prom, "go_memstats_heap_inuse_bytes 1.343488e+06", "go_memstats_heap_inuse_bytes many", 1),
	}
	got := map[string]string{}
	for name, in := range cases {
		_, err := Parse(strings.NewReader(in), name)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		got[name] = err.Error()
	}
	golden.JSON(t, "errors.json", got)
}
