package jmx

import (
	"errors"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: each saved jcmd output and Prometheus page in fixtures
// parses to the model in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, gc := range []string{"g1", "parallel", "serial", "shenandoah", "z"} {
		t.Run(gc+".nmt", func(t *testing.T) {
			n, err := ParseNMT(golden.Fixture(t, "jvm/"+gc+".nmt"), gc+".nmt")
			if gc == "serial" {
				// Captured from a JVM started without NMT: what jcmd says then.
				if !errors.Is(err, ErrNMTDisabled) {
					t.Fatalf("got %v, want ErrNMTDisabled", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, gc+".nmt.json", n)
		})
		t.Run(gc+".heap_info", func(t *testing.T) {
			hi, err := ParseHeapInfo(golden.Fixture(t, "jvm/"+gc+".heap_info"), gc+".heap_info")
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, gc+".heap_info.json", hi)
		})
	}
	t.Run("g1-detail.nmt", func(t *testing.T) {
		n, err := ParseNMT(golden.Fixture(t, "jvm/g1-detail.nmt"), "g1-detail.nmt")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "g1-detail.nmt.json", n)
	})
	for _, exp := range []string{"clientjava", "micrometer", "simpleclient"} {
		t.Run(exp+".prom", func(t *testing.T) {
			m, err := ParsePrometheus(golden.Fixture(t, "prometheus/"+exp+".prom"), exp+".prom")
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, exp+".prom.json", m)
		})
	}
}
