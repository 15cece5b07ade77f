package syscalltrace

import (
	"os"
	"testing"
)

func TestZZProf(t *testing.T) {
	f, err := os.Open("/tmp/c1/p300.strace")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	r := NewReplay(true)
	s := NewStraceReader(f, "x", 0)
	s.Workers = 2
	if err := r.ApplyAll(s); err != nil {
		t.Fatal(err)
	}
	t.Log(len(r.Outstanding()))
}
