package input

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLimitReader(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int64
		want string // "" with an error
	}{
		{"", 4, ""},
		{"abcd", 4, "abcd"},
		{"abc", 4, "abc"},
		{"abcde", 4, ""},
	} {
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			b, err := ReadAll(r, tc.max, "f")
			switch {
			case len(tc.in) > int(tc.max):
				if !errors.Is(err, ErrTooLarge) || err.Error() != "f: larger than the limit of 4 B" {
					t.Errorf("%q: err %v, want ErrTooLarge", tc.in, err)
				}
				if len(b) > int(tc.max) {
					t.Errorf("%q: read %d bytes past the limit", tc.in, len(b))
				}
			case err != nil || string(b) != tc.want:
				t.Errorf("%q: read %q, %v; want %q", tc.in, b, err, tc.want)
			}
		}
	}
}

func TestLineLimitReader(t *testing.T) {
	for _, tc := range []struct {
		in     string
		line   int // the line reported too long; 0: none
		prefix string
	}{
		{"abc\nabcd\n\nab", 0, "abc\nabcd\n\nab"},
		{"abcd", 0, "abcd"},
		{"abc\nabcde\nx\n", 2, "abc\nabcd"},
		{"abcde", 1, "abcd"},
		{"a\nb\nc\n0123456789", 4, "a\nb\nc\n0123"},
	} {
		for _, one := range []bool{false, true} {
			var r io.Reader = strings.NewReader(tc.in)
			if one {
				r = iotest.OneByteReader(r)
			}
			b, err := io.ReadAll(LineLimitReader(r, 4, "f"))
			if string(b) != tc.prefix {
				t.Errorf("%q (one byte %v): read %q, want %q", tc.in, one, b, tc.prefix)
			}
			var pe interface{ Unwrap() error }
			switch {
			case tc.line == 0 && err != nil:
				t.Errorf("%q: %v", tc.in, err)
			case tc.line > 0 && (!errors.Is(err, ErrTooLarge) || !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "f:"+string(rune('0'+tc.line))+": line longer than 4 B")):
				t.Errorf("%q: err %v, want line %d too long", tc.in, err, tc.line)
			}
		}
	}
}
