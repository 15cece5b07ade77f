// Package atomicfile writes a file so that readers see the old content or
// the whole new one, never half: a temporary file in the same directory,
// synced, given its mode, then renamed over the path.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// Write writes path with mode perm through write. A failure leaves path
// as it was and no temporary file behind.
func Write(path string, perm os.FileMode, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing to remove
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	// CreateTemp makes the file private; the caller says what it is.
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
