package humanize

import "testing"

func TestBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{64 << 20, "64.0 MiB"},
		{20 << 30, "20.0 GiB"},
		{1 << 60, "1.0 EiB"},
		{^uint64(0), "16.0 EiB"},
	} {
		if got := Bytes(tc.n); got != tc.want {
			t.Errorf("Bytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"4096", 4096},
		{" 64MiB ", 64 << 20},
		{"64 MiB", 64 << 20},
		{"1.5GiB", 3 << 29},
		{"512k", 512 << 10},
		{"512KB", 512 << 10},
		{"2T", 2 << 40},
		{"0", 0},
	} {
		got, err := ParseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.2.3", "12 parsecs", "99999999999TiB", "1e9"} {
		if got, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) = %d, want an error", bad, got)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	// What Bytes prints at whole units must parse back to the same figure,
	// so a threshold copied from a report means what it said.
	for _, n := range []uint64{1 << 10, 3 << 20, 7 << 30} {
		got, err := ParseBytes(Bytes(n))
		if err != nil || got != n {
			t.Errorf("ParseBytes(Bytes(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestList(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{{nil, ""}, {[]string{"a"}, "a"}, {[]string{"a", "b"}, "a or b"}, {[]string{"a", "b", "c"}, "a, b or c"}} {
		if got := List(tc.words, "or"); got != tc.want {
			t.Errorf("List(%q) = %q, want %q", tc.words, got, tc.want)
		}
	}
}
