package proc

import "testing"

func TestRoot(t *testing.T) {
	for _, c := range []struct{ root, want, dir string }{
		{"", "/proc", "/proc/42"},
		{"testdata/proc", "testdata/proc", "testdata/proc/42"},
	} {
		if got := Root(c.root); got != c.want {
			t.Errorf("Root(%q) = %q, want %q", c.root, got, c.want)
		}
		if got := Dir(c.root, 42); got != c.dir {
			t.Errorf("Dir(%q, 42) = %q, want %q", c.root, got, c.dir)
		}
	}
}
