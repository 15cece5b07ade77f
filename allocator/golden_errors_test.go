package allocator

import (
	"bufio"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldenErrors: the real statistics damaged by the test (jemalloc
// JSON cut, a tcmalloc figure made a word, text that is none of them) give
// the error texts in testdata/golden, each naming its input.
func TestParserGoldenErrors(t *testing.T) {
	je, tc := golden.Text(t, "allocators/jemalloc-stats.json"), golden.Text(t, "allocators/tcmalloc-stats.txt")
	cases := map[string]string{
		"jemalloc-json-cut":  je[:len(je)/2],
		"tcmalloc-notnumber": strings.Replace(tc, "MALLOC:       11668568", "MALLOC:       many", 1),
		"unknown":            "neither allocator's statistics\n",
	}
	got := map[string]string{}
	for name, in := range cases {
		s, err := Parse(bufio.NewReader(strings.NewReader(in)), name)
		if err == nil {
			got[name] = "no error: " + string(s.Allocator)
			continue
		}
		got[name] = err.Error()
	}
	golden.JSON(t, "errors.json", got)
}
