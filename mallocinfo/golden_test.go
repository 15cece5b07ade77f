package mallocinfo

import (
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: each malloc_info capture in fixtures parses, and is
// analysed, to the snapshot in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"arenas", "churn", "fastbins", "histogram", "single", "story1"} {
		t.Run(name, func(t *testing.T) {
			info, err := Parse(golden.Fixture(t, "mallocinfo/"+name+".xml"), name+".xml")
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, name+".json", Analyze(info))
		})
	}
}
