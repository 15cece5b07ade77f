package proc

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadStatusSelf(t *testing.T) {
	ids, err := ReadStatus("/proc/self", os.Getpid())
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

func TestReadStatusFiles(t *testing.T) {
	for _, tc := range []struct {
		name, status string
		want         IDs
		err          string
	}{
		{"container", "Name:\tjava\nUid:\t1000\t1000\t1000\t1000\nGid:\t50\t50\t50\t50\nGroups:\t50 60 \nTracerPid:\t17\nNSpid:\t4242\t7\nSigCgt:\t0000000181005ccf\n",
			IDs{Name: "java", UID: 1000, UIDs: "1000 1000 1000 1000", GID: 50, Groups: []int{50, 60}, NSPID: 7, TracerPID: 17, SigCgt: 0x181005ccf}, ""},
		{"old kernel", "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\n", IDs{UID: 0, UIDs: "0 0 0 0", GID: 0, Groups: []int{}, NSPID: 99}, ""},
		{"no ids", "Name:\tx\n", IDs{Name: "x", UID: -1, GID: -1, NSPID: 99}, ""},
		{"memory", "Name:\tx\nVmRSS:\t  300 kB\nRssAnon:\t  100 kB\nRssFile:\t  150 kB\nRssShmem:\t   50 kB\n",
			IDs{Name: "x", UID: -1, GID: -1, NSPID: 99, RSSBytes: 300 << 10, RSSAnonBytes: 100 << 10, RSSShmemBytes: 50 << 10}, ""},
		{"garbage", "Uid:\troot\n", IDs{}, "status:1: Uid: wants a number"},
		{"bad mask", "SigCgt:\tzz\n", IDs{}, "status:1: SigCgt: wants a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "status"), []byte(tc.status), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ReadStatus(dir, 99)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	if _, err := ReadStatus(t.TempDir(), 1); !os.IsNotExist(err) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCatches(t *testing.T) {
	ids := IDs{SigCgt: 0x4} // SIGQUIT only
	if !ids.Catches(3) || ids.Catches(2) || ids.Catches(0) || ids.Catches(65) {
		t.Errorf("Catches wrong for mask %#x", ids.SigCgt)
	}
	self, err := ReadStatus("/proc/self", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The Go runtime installs a handler for SIGQUIT in every program.
	if !self.Catches(3) {
		t.Errorf("this test process does not catch SIGQUIT by its status (SigCgt %#x)", self.SigCgt)
	}
}

// FuzzParse: status is the kernel's, but its Name is the process's own
// choice (comm); any text gives ids or an error naming the line.
func FuzzParseStatus(f *testing.F) {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		f.Add(string(b))
	}
	f.Add("Name:\tx\nUid:\t1\t1\t1\t1\nNSpid:\t1\t2\nSigCgt:\tffffffffffffffff\n")
	f.Fuzz(func(t *testing.T, text string) {
		ids, err := parseStatus(text, "status", 7)
		if err != nil {
			if !strings.Contains(err.Error(), "status:") {
				t.Fatalf("error without the file and line: %v", err)
			}
			return
		}
		if ids.UID < -1 || ids.GID < -1 || ids.NSPID < 0 || ids.TracerPID < 0 {
			t.Fatalf("negative id in %+v", ids)
		}
	})
}

// TestStartTime reads field 22 after the last ')': a command name may hold
// spaces and parentheses.
func TestStartTime(t *testing.T) {
	dir := t.TempDir()
	stat := "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10\n"
	if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
		t.Fatal(err)
	}
	start, state, err := StartTime(dir)
	if err != nil || start != "123456" || state != "S" {
		t.Errorf("got %q %q %v, want 123456 S", start, state, err)
	}
	os.WriteFile(filepath.Join(dir, "stat"), []byte("4242 (x) S 1\n"), 0o644)
	if _, _, err := StartTime(dir); err == nil || !strings.Contains(err.Error(), "fields") {
		t.Errorf("short stat: %v", err)
	}
	if s, _, err := StartTime("/proc/self"); err != nil || s == "" {
		t.Errorf("own stat: %q %v", s, err)
	}
}
