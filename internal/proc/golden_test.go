package proc

import (
	"io"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: a real process's status and maps (fixtures/proc, made
// by fixtures/capture-proc.sh) parse to the models in testdata/golden.
func TestParserGoldens(t *testing.T) {
	t.Run("mapper.status", func(t *testing.T) {
		b, err := io.ReadAll(golden.Fixture(t, "proc/mapper.status"))
		if err != nil {
			t.Fatal(err)
		}
		ids, err := ParseStatus(string(b), "mapper.status", 0)
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.status.json", ids)
	})
	t.Run("mapper.maps", func(t *testing.T) {
		ms, err := ParseMaps(golden.Fixture(t, "proc/mapper.maps"), "mapper.maps")
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "mapper.maps.json", ms)
	})
}
