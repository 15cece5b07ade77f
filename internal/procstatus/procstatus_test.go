package procstatus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSelf(t *testing.T) {
	ids, err := Read("/proc/self", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ids.UID != os.Getuid() || ids.GID != os.Getgid() {
		t.Errorf("ids %+v, want uid %d gid %d", ids, os.Getuid(), os.Getgid())
	}
	if ids.NSPID <= 0 {
		t.Errorf("NSPID %d", ids.NSPID)
	}
}

func TestReadFiles(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         IDs
		err          string
	}{
		{"container", "Name:\tjava\nUid:\t1000\t1000\t1000\t1000\nGid:\t50\t50\t50\t50\nNSpid:\t4242\t7\n", IDs{1000, 50, 7}, ""},
		{"old kernel", "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", IDs{0, 0, 99}, ""},
		{"no ids", "Name:\tx\n", IDs{-1, -1, 99}, ""},
		{"garbage", "Uid:\troot\n", IDs{}, "status:1: Uid: wants a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "status"), []byte(tc.status), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Read(dir, 99)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := Read(t.TempDir(), 1); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}
