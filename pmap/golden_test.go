package pmap

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestClassifierGoldens: each smaps capture in fixtures, classified with no
// live hints, gives the classes and reasons in testdata/golden.
func TestClassifierGoldens(t *testing.T) {
	type classified struct {
		Start, End string
		Perms      string
		Name       string
		Class      Class
		Reason     string
	}
	for _, name := range []string{"smaps/arenas.smaps", "smaps/mapper.smaps", "smaps/procfs-alertmanager.smaps", "jvm/g1-detail.smaps"} {
		t.Run(name, func(t *testing.T) {
			ms, err := ParseSmaps(golden.Fixture(t, name), name)
			if err != nil {
				t.Fatal(err)
			}
			Classify(ms, Hints{})
			out := make([]classified, len(ms))
			for i, m := range ms {
				out[i] = classified{fmt.Sprintf("%#x", m.Start), fmt.Sprintf("%#x", m.End), m.Perms, m.Name, m.Class, m.Reason}
			}
			golden.JSON(t, filepath.Base(name)+".json", out)
		})
	}
}
