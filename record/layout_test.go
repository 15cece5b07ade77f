//go:build linux && amd64

package record

import (
	"testing"
	"unsafe"
)

// TestEventLayout pins handle's offsets to struct event as bpf2go read it
// from the object's BTF: a field moved in memrec.c fails here, not as
// garbage in a recording.
func TestEventLayout(t *testing.T) {
	var e memrecEvent
	got := map[string]uintptr{
		"size": unsafe.Sizeof(e), "ts": unsafe.Offsetof(e.Ts), "enter": unsafe.Offsetof(e.Enter), "addr": unsafe.Offsetof(e.Addr),
		"size_field": unsafe.Offsetof(e.Size), "arg1": unsafe.Offsetof(e.Arg1), "arg4": unsafe.Offsetof(e.Arg4),
		"tid": unsafe.Offsetof(e.Tid), "stack": unsafe.Offsetof(e.StackId), "kind": unsafe.Offsetof(e.Kind), "fn": unsafe.Offsetof(e.Fn),
	}
	want := map[string]uintptr{"size": eventSize, "ts": 0, "enter": 8, "addr": 16, "size_field": 24, "arg1": 32, "arg4": 56,
		"tid": 64, "stack": 68, "kind": 72, "fn": 73}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("struct event: %s at %d, handle reads it at %d", k, got[k], w)
		}
	}
}
