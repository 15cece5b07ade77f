package goruntime

import (
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: a Go program's expvar page and its Prometheus page
// parse to the MemStats in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"expvar.json", "prometheus-go-collector.txt"} {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(golden.Fixture(t, "goruntime/"+name), name)
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, name+".json", s)
		})
	}
}
