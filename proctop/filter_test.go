package proctop

import (
	"github.com/memdiag/memdiag/internal/proc"
	"os"
	"strings"
	"testing"
)

// TestFilterKeep: the name matches the command name or the command line;
// the uid must match when given; the caller's own process never matches
// the name it looks for (its command line holds it).
func TestFilterKeep(t *testing.T) {
	self := os.Getpid()
	args := ReadCmdline("/proc", self)
	if len(args) == 0 {
		t.Fatal("no command line for this test's own process")
	}
	me := &Process{PID: self, UID: os.Getuid(), Command: "proctop.test"}
	word := args[len(args)-1] // in the command line only, most likely
	for _, tt := range []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{Name: "proctop"}, true},
		{Filter{Name: word}, true},
		{Filter{Name: word, Self: self}, false},
		{Filter{Name: "no such name " + strings.Repeat("x", 20)}, false},
		{Filter{UID: os.Getuid(), HasUID: true}, true},
		{Filter{UID: os.Getuid() + 1, HasUID: true}, false},
	} {
		if got := tt.f.Keep(proc.FS{})(me); got != tt.want {
			t.Errorf("%+v: keep %v, want %v (command line %q)", tt.f, got, tt.want, args)
		}
	}
}
