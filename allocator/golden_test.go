package allocator

import (
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: jemalloc's and tcmalloc's saved statistics parse, through
// the parser list, to the model in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"jemalloc-stats.json", "jemalloc-stats.txt", "tcmalloc-stats.txt"} {
		t.Run(name, func(t *testing.T) {
			s, err := Parse(NewSniffer(golden.Fixture(t, "allocators/"+name)), name)
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, name+".json", s)
		})
	}
}
