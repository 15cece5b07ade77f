package mallocinfo

import (
	"bytes"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldensInfo: each malloc_info capture parses to the Info in
// testdata/golden (the figures as malloc_info printed them, before any
// analysis), and the log of rounds scans to every document in it, so a
// faster decoder can be checked to read the same captures the same way.
func TestParserGoldensInfo(t *testing.T) {
	for _, name := range []string{"arenas", "churn", "fastbins", "histogram", "single", "story1"} {
		t.Run(name, func(t *testing.T) {
			info, err := Parse(golden.Fixture(t, "mallocinfo/"+name+".xml"), name+".xml")
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, name+".info.json", info)
		})
	}
	t.Run("rounds.log", func(t *testing.T) {
		var infos []*Info
		err := scanSequential(golden.Fixture(t, "mallocinfo/rounds.log"), "rounds.log", func(i *Info) error {
			infos = append(infos, i)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "rounds.log.info.json", infos)
		// Decoded in parallel, in chunks of 1 KiB (the log's documents
		// straddle them), the documents are the same, in the same order.
		var par []*Info
		err = scanParallel(golden.Fixture(t, "mallocinfo/rounds.log"), "rounds.log", func(i *Info) *Info { return i }, func(i *Info) error {
			par = append(par, i)
			return nil
		}, 1<<10, 4<<10)
		if err != nil {
			t.Fatal(err)
		}
		golden.JSON(t, "rounds.log.info.json", par)
	})
}

// TestParserGoldenErrors: a real capture damaged by the test (cut inside
// its document, a number made a word, an element left open inside another)
// gives the error text in testdata/golden, naming input and line.
func TestParserGoldenErrors(t *testing.T) {
	s := golden.Text(t, "mallocinfo/single.xml")
	cases := map[string]string{
		"cut":       s[:len(s)/2],
		"notnumber": strings.Replace(s, `size="`, `size="many`, 1),
		"unclosed":  strings.Replace(s, "</sizes>", "<sizes>", 1),
		"none":      "a log with no document in it\n",
	}
	got := map[string]string{}
	for name, in := range cases {
		_, err := Parse(bytes.NewReader([]byte(in)), "single-"+name+".xml")
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		got[name] = err.Error()
	}
	golden.JSON(t, "errors.json", got)
}
