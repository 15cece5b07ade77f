package memcg

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// TestBootTime: btime agrees with now − /proc/uptime.
func TestBootTime(t *testing.T) {
	boot, err := BootTime(proc.FS{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	up, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	// btime is whole seconds and uptime does not count suspend: a few
	// seconds apart at most on a machine that never slept.
	if d := time.Since(boot) - time.Duration(up*float64(time.Second)); d < -2*time.Second || d > 2*time.Second {
		t.Errorf("btime %v is %v off now − uptime", boot, d)
	}
}

func TestOOMWallTime(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	boot := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		r    OOMReport
		boot time.Time
		want time.Time
		ok   bool
	}{
		{"this boot's dmesg", OOMReport{Time: "4425.500000"}, boot, boot.Add(4425500 * time.Millisecond), true},
		{"a saved dmesg", OOMReport{Time: "4425.500000"}, time.Time{}, time.Time{}, false},
		{"journal short", OOMReport{Clock: "Dec 03 11:00:00"}, time.Time{}, time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC), true},
		// A December log read in January is last year's.
		{"journal short, last year", OOMReport{Clock: "Dec 31 23:00:00"}, time.Time{}, time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), true},
		{"journal short-iso", OOMReport{Clock: "2026-12-03T11:00:00+0100"}, time.Time{}, time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC), true},
		{"no time at all", OOMReport{}, boot, time.Time{}, false},
	}
	for _, tt := range tests {
		n := now
		if strings.Contains(tt.name, "last year") {
			n = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
		}
		got, how, ok := tt.r.WallTime(tt.boot, n)
		if ok != tt.ok || !got.Equal(tt.want) || (ok && how == "") {
			t.Errorf("%s: %v %q %v, want %v %v", tt.name, got, how, ok, tt.want, tt.ok)
		}
	}
}
