package proc

import "testing"

func TestFSPaths(t *testing.T) {
	for _, c := range []struct{ root, want, dir, file string }{
		{"", "/proc", "/proc/42", "/proc/42/task/43/status"},
		{"testdata/proc", "testdata/proc", "testdata/proc/42", "testdata/proc/42/task/43/status"},
	} {
		fs := NewFS(c.root)
		if got := fs.Root(); got != c.want {
			t.Errorf("NewFS(%q).Root() = %q, want %q", c.root, got, c.want)
		}
		if got := fs.Dir(42); got != c.dir {
			t.Errorf("NewFS(%q).Dir(42) = %q, want %q", c.root, got, c.dir)
		}
		if got := fs.PIDPath(42, "task", "43", "status"); got != c.file {
			t.Errorf("NewFS(%q).PIDPath = %q, want %q", c.root, got, c.file)
		}
	}
	if (FS{}).Root() != defaultRoot {
		t.Errorf("the zero FS is rooted at %q", (FS{}).Root())
	}
}
