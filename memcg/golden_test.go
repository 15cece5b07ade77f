package memcg

import (
	"path/filepath"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldens: the kernel's OOM reports and a cgroup v2 directory in
// fixtures read to the models in testdata/golden.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"oom-v1.dmesg", "oom-v2-constructed.dmesg", "oom-global-constructed.dmesg",
		"oom-v1-linux4.15-constructed.dmesg", "oom-global-linux4.15-constructed.dmesg"} {
		t.Run(name, func(t *testing.T) {
			reps, err := ParseOOM(golden.Fixture(t, "cgroup/"+name), name)
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, name+".json", reps)
		})
	}
	t.Run("v2", func(t *testing.T) {
		g, err := Read(filepath.Join("..", "fixtures", "cgroup", "v2"))
		if err != nil {
			t.Fatal(err)
		}
		g.Path = "" // where the checkout is
		golden.JSON(t, "v2.json", g)
	})
}
