//go:build linux && amd64

package ptracecall

import "testing"

func TestThreadRank(t *testing.T) {
	asleep := map[string]string{"State": "S (sleeping)", "SigBlk": "0000000000000000"}
	for _, c := range []struct {
		name    string
		status  map[string]string
		syscall string
		want    int
	}{
		{"read", asleep, "0 0x0 0x7ffc 0x1 0x0 0x0 0x0 0x7ffc0 0x7f00", rankRestarts},
		{"futex", asleep, "202 0x7f 0x80 0x2 0x0 0x0 0x0 0x7ffc0 0x7f00", rankRestarts},
		{"epoll_wait", asleep, "232 0x4 0x7ffc 0x1 0xffffffff 0x0 0x0 0x7ffc0 0x7f00", rankEINTR},
		{"page fault", asleep, "-1 0x7ffc0 0x7f00", rankRunning},
		{"running", map[string]string{"State": "R (running)", "SigBlk": "0"}, "running", rankRunning},
		{"SIGSEGV blocked", map[string]string{"State": "S (sleeping)", "SigBlk": "0000000000000400"}, "0 0x0", rankRefused},
		{"unreadable mask", map[string]string{"State": "S (sleeping)"}, "0 0x0", rankRefused},
		{"no syscall file", asleep, "", rankRunning},
	} {
		if got := threadRank(c.status, c.syscall); got != c.want {
			t.Errorf("%s: rank %d, want %d", c.name, got, c.want)
		}
	}
}
