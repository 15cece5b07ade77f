package jmx

import (
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldenErrors: real captures damaged by the test (NMT cut
// after its total, a heap_info line's size made a word, a Prometheus page
// with a sample that is no number, or with its JVM families renamed) give
// the error texts in testdata/golden, each naming its input.
func TestParserGoldenErrors(t *testing.T) {
	nmt := golden.Text(t, "jvm/g1.nmt")
	heap := golden.Text(t, "jvm/g1.heap_info")
	prom := golden.Text(t, "prometheus/simpleclient.prom")
	got := map[string]string{}
	record := func(name string, err error) {
		if err == nil {
			t.Errorf("%s: no error", name)
			return
		}
		got[name] = err.Error()
	}
	_, err := ParseNMT(strings.NewReader(nmt[:strings.Index(nmt, "Java Heap")]), "g1-cut.nmt")
	record("nmt-cut", err)
	_, err = ParseNMT(strings.NewReader(strings.Replace(nmt, "reserved=262144KB", "reserved=manyKB", 1)), "g1-notnumber.nmt")
	record("nmt-notnumber", err)
	_, err = ParseHeapInfo(strings.NewReader(strings.Replace(heap, "total 242688K", "total manyK", 1)), "g1-notnumber.heap_info")
	record("heap_info-notnumber", err)
	_, err = ParsePrometheus(strings.NewReader(strings.Replace(prom, "} 7.4108928E7", "} seventy", 1)), "simpleclient-notnumber.prom")
	record("prom-notnumber", err)
	_, err = ParsePrometheus(strings.NewReader(strings.ReplaceAll(prom, "jvm_", "xvm_")), "simpleclient-renamed.prom")
	record("prom-renamed", err)
	golden.JSON(t, "errors.json", got)
}
