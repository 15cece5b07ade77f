package jmx

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want uint64
		bad  bool
	}{
		{"1048576", 1 << 20, false}, {"512m", 512 << 20, false}, {"2G", 2 << 30, false},
		{"64k", 64 << 10, false}, {"1t", 1 << 40, false}, {"0", 0, false},
		{"", 0, true}, {"m", 0, true}, {"1.5g", 0, true}, {"-1", 0, true}, {"+1", 0, true},
		{"17179869184g", 0, true}, // overflows 64 bits
		{"18446744073709551616", 0, true},
	} {
		got, err := parseSize(c.in)
		if c.bad {
			if !errors.Is(err, ErrBadSize) {
				t.Errorf("parseSize(%q) = %d, %v; want ErrBadSize", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

// TestMaxDirectBytes: the flag when set above 0, else HotSpot's default,
// the maximum heap; 0 means the default to HotSpot too.
func TestMaxDirectBytes(t *testing.T) {
	heap := uint64(4 << 30)
	for _, c := range []struct {
		flags map[string]string
		heap  *uint64
		want  uint64
		from  string
		ok    bool
	}{
		{map[string]string{"MaxDirectMemorySize": "536870912"}, &heap, 512 << 20, "-XX:MaxDirectMemorySize", true},
		{map[string]string{"MaxDirectMemorySize": "1g"}, nil, 1 << 30, "-XX:MaxDirectMemorySize", true},
		{map[string]string{"MaxDirectMemorySize": "0"}, &heap, heap, "the default: the maximum heap", true},
		{nil, &heap, heap, "the default: the maximum heap", true},
		{nil, nil, 0, "", false},
	} {
		m := &JVMMemory{Flags: c.flags, Heap: Usage{MaxBytes: c.heap}}
		n, from, ok := m.MaxDirectBytes()
		if n != c.want || from != c.from || ok != c.ok {
			t.Errorf("flags %v heap %v: %d %q %v, want %d %q %v", c.flags, c.heap, n, from, ok, c.want, c.from, c.ok)
		}
	}
}
