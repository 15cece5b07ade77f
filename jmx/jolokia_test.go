package jmx

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadCredentials reads USER:PASSWORD from a file's first line, or
// from the environment without one; a file without the colon is refused,
// naming it.
func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("ops:s3cr:et\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("no colon here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var j Jolokia
	if err := j.LoadCredentials(good, nil); err != nil || j.User != "ops" || j.Password != "s3cr:et" {
		t.Errorf("file: %q %q %v", j.User, j.Password, err)
	}
	env := map[string]string{"MEMDIAG_JOLOKIA_USER": "u", "MEMDIAG_JOLOKIA_PASSWORD": "p"}
	if err := j.LoadCredentials("", func(k string) string { return env[k] }); err != nil || j.User != "u" || j.Password != "p" {
		t.Errorf("environment: %q %q %v", j.User, j.Password, err)
	}
	if err := j.LoadCredentials(bad, nil); !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), bad) {
		t.Errorf("no colon: %v, want ErrCredentials naming %s", err, bad)
	}
}
