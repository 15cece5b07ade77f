package pmap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// block writes one smaps block with the given header and counters, closed
// by VmFlags as Linux ≥ 3.8 does.
func block(header string, counters ...string) string {
	return header + "\n" + strings.Join(counters, "\n") + "\nVmFlags: rd wr mr mw me ac \n"
}

func TestParseSmapsHeaderAndNames(t *testing.T) {
	tests := []struct {
		name   string
		header string
		want   Mapping
	}{
		{
			name:   "anonymous with trailing space",
			header: "7fbd51e00000-7fbd52200000 rw-p 00000000 00:00 0 ",
			want:   Mapping{Start: 0x7fbd51e00000, End: 0x7fbd52200000, Perms: "rw-p", Dev: "00:00"},
		},
		{
			name:   "padded path",
			header: "562e0e3d4000-562e0e3d5000 r-xp 00001000 fe:00 9978031                    /opt/demo/smapsdemo",
			want:   Mapping{Start: 0x562e0e3d4000, End: 0x562e0e3d5000, Perms: "r-xp", Offset: 0x1000, Dev: "fe:00", Inode: 9978031, Name: "/opt/demo/smapsdemo"},
		},
		{
			name:   "spaces in the name are kept, runs included",
			header: "7fbd526c1000-7fbd526c3000 rw-s 00000000 fe:00 9978026                    /opt/demo/file with  spaces.bin",
			want:   Mapping{Start: 0x7fbd526c1000, End: 0x7fbd526c3000, Perms: "rw-s", Dev: "fe:00", Inode: 9978026, Name: "/opt/demo/file with  spaces.bin"},
		},
		{
			name:   "deleted and escaped newline",
			header: "7fbd526c0000-7fbd526c1000 r--p 00000000 fe:00 9978027                    /opt/demo/new\\012line.bin (deleted)",
			want:   Mapping{Start: 0x7fbd526c0000, End: 0x7fbd526c1000, Perms: "r--p", Dev: "fe:00", Inode: 9978027, Name: `/opt/demo/new\012line.bin (deleted)`},
		},
		{
			name:   "anon name from prctl",
			header: "7fbd526c3000-7fbd526c5000 rw-p 00000000 00:00 0                          [anon:jit code]",
			want:   Mapping{Start: 0x7fbd526c3000, End: 0x7fbd526c5000, Perms: "rw-p", Dev: "00:00", Name: "[anon:jit code]"},
		},
		{
			name:   "vsyscall at the top of the address space",
			header: "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]",
			want:   Mapping{Start: 0xffffffffff600000, End: 0xffffffffff601000, Perms: "--xp", Dev: "00:00", Name: "[vsyscall]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseSmaps(strings.NewReader(block(tt.header, "Rss:                   4 kB")), "test")
			if err != nil {
				t.Fatal(err)
			}
			got := ms[0]
			tt.want.VmFlags = "rd wr mr mw me ac"
			tt.want.Set(FieldRss, 4096)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(Mapping{})); diff != "" {
				t.Errorf("mapping (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSmapsCounters(t *testing.T) {
	in := block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x",
		"Size:                  4 kB",
		"Rss:                   4 kB",
		"Pss:                   2 kB",
		"Swap:                  0 kB",
		"THPeligible:           1",
		"ProtectionKey:         0",
		"FutureCounter:        17 kB",
		"FutureFlag:    maybe",
	)
	ms, err := ParseSmaps(strings.NewReader(in), "test")
	if err != nil {
		t.Fatal(err)
	}
	m := &ms[0]
	for _, c := range []struct {
		f    Field
		want uint64
	}{{FieldSize, 4096}, {FieldRss, 4096}, {FieldPss, 2048}, {FieldSwap, 0}, {FieldTHPeligible, 1}, {FieldProtectionKey, 0}} {
		got, ok := m.Value(c.f)
		if !ok || got != c.want {
			t.Errorf("%s = %d, %v; want %d, true", c.f, got, ok, c.want)
		}
	}
	// Absent is not zero: this block has no Pss_Dirty (kernels before 6.0).
	if _, ok := m.Value(FieldPssDirty); ok {
		t.Error("Pss_Dirty reported present, but the input has none")
	}
	wantExtra := []ExtraField{{Key: "FutureCounter", Value: "17 kB"}, {Key: "FutureFlag", Value: "maybe"}}
	if diff := cmp.Diff(wantExtra, m.Extra); diff != "" {
		t.Errorf("unknown keys (-want +got):\n%s", diff)
	}
	if !m.HasVmFlag("ac") || m.HasVmFlag("ht") {
		t.Errorf("VmFlags %q: ac should be set, ht not", m.VmFlags)
	}
}

func TestParseMapsStyleInput(t *testing.T) {
	in := "00400000-00401000 r-xp 00000000 fd:01 42 /bin/x\n7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \n"
	ms, err := ParseSmaps(strings.NewReader(in), "maps")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[1].Start != 0x7f0000000000 || ms[0].Has(FieldRss) {
		t.Errorf("maps input: got %d mappings, second at %#x, first has Rss %v", len(ms), ms[1].Start, ms[0].Has(FieldRss))
	}
}

func TestParseSmapsErrors(t *testing.T) {
	good := block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:                   4 kB")
	tests := []struct {
		name     string
		in       string
		sentinel error
		want     string // substring of the message, after "name:line: "
	}{
		{"empty", "", ErrEmpty, "in:"},
		{"truncated before VmFlags", good + "00402000-00403000 r--p 00000000 fd:01 42 /bin/x\nRss:  4 kB\n", ErrTruncated, "in:5: input ends inside the mapping at line 4"},
		{"no final newline", strings.TrimSuffix(good, "\n"), ErrTruncated, "in:3: last line has no newline"},
		{"header where VmFlags expected", good + "00402000-00403000 r--p 00000000 fd:01 42 /bin/x\nRss:  4 kB\n00403000-00404000 r--p 00000000 fd:01 42 /bin/x\n", ErrTruncated, "in:4: mapping has no VmFlags line"},
		{"binary garbage", "\x00\x01\x02garbage\xff\n", ErrMalformed, "in:1: expected a mapping header"},
		{"bad permissions", "00400000-00401000 rwzp 00000000 fd:01 42 /bin/x\n", ErrMalformed, "in:1: permissions \"rwzp\""},
		{"bad address", "0040g000-00401000 r-xp 00000000 fd:01 42 /bin/x\n", ErrMalformed, "in:1: start address"},
		{"no inode", "00400000-00401000 r-xp 00000000 fd:01\n", ErrMalformed, "in:1: expected a mapping header"},
		{"counter not a number", block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  four kB"), ErrMalformed, "in:2: Rss: not a decimal number"},
		{"counter without unit", block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  4"), ErrMalformed, "in:2: Rss: expected a value in kB"},
		{"counter overflows", block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  99999999999999999999 kB"), ErrMalformed, "in:2: Rss: number out of range"},
		{"duplicate counter", block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  4 kB", "Rss:  4 kB"), ErrMalformed, "in:3: Rss appears twice"},
		{"line without colon", block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss 4 kB"), ErrMalformed, "in:2: expected a mapping header or \"Key: value\""},
		{"smaps_rollup", "00400000-7fff00000000 ---p 00000000 00:00 0                          [rollup]\nRss:  4 kB\n", ErrMalformed, "in:1: this is smaps_rollup"},
		{"counter after maps-style block", "00400000-00401000 r-xp 00000000 fd:01 42 /bin/x\n" + good, ErrMalformed, "in:3: counter line in a maps-style input"},
		{"line over 64 KiB", "00400000-00401000 r-xp 00000000 fd:01 42 /" + strings.Repeat("a", 70<<10) + "\n", ErrMalformed, "in:1: line longer than 64 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := ParseSmaps(strings.NewReader(tt.in), "in")
			if err == nil {
				t.Fatalf("no error; parsed %d mappings", len(ms))
			}
			if !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tt.sentinel)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Name != "in" {
				t.Errorf("error %q is not a *ParseError naming the input", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if ms != nil {
				t.Errorf("a failed parse returned %d mappings: a partial answer must not pass for a whole one", len(ms))
			}
		})
	}
}

// errReader fails after its content, like a read of a process that vanished.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		return n, e.err
	}
	return n, err
}

func TestParseSmapsReadErrorIsWrapped(t *testing.T) {
	cause := errors.New("device went away")
	good := block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  4 kB")
	_, err := ParseSmaps(&errReader{r: strings.NewReader(good), err: cause}, "in")
	if !errors.Is(err, cause) {
		t.Fatalf("got %v, want the reader's error wrapped", err)
	}
	if !strings.HasPrefix(err.Error(), "in:4: read failed") {
		t.Errorf("error %q should name the input and line", err)
	}
}

func TestDecoderStreams(t *testing.T) {
	var in strings.Builder
	for i := 0; i < 3; i++ {
		in.WriteString(block("00400000-00401000 r-xp 00000000 fd:01 42 /bin/x", "Rss:  4 kB"))
	}
	d := NewDecoder(strings.NewReader(in.String()), "in")
	var m Mapping
	n := 0
	for {
		err := d.Decode(&m)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 3 {
		t.Errorf("decoded %d mappings, want 3", n)
	}
	if err := d.Decode(&m); err != io.EOF {
		t.Errorf("Decode after the end = %v, want io.EOF", err)
	}
}

// TestPermStrings checks the permission table against the strings it stands for.
func TestPermStrings(t *testing.T) {
	seen := map[string]bool{}
	for i, p := range permStrings {
		if !validPerms([]byte(p)) || permIndex([]byte(p)) != i || seen[p] {
			t.Errorf("permStrings[%d] = %q: not valid, not at its index, or twice", i, p)
		}
		seen[p] = true
	}
}

// TestParseSmapsRoomGuess: a reader that tells its size gets room for its
// mappings up front; the mappings are the same whether the guess is over
// the count (smaps), under it (maps, a fifth of the bytes a mapping) or
// not made (a reader that does not tell).
func TestParseSmapsRoomGuess(t *testing.T) {
	for _, name := range []string{"mapper.smaps", "arenas.smaps", "procfs-alertmanager.smaps"} {
		b, err := os.ReadFile(filepath.Join("..", "fixtures", "smaps", name))
		if err != nil {
			t.Fatal(err)
		}
		maps := mapsOf(b)
		for _, in := range [][]byte{b, maps} {
			guessed, err := ParseSmaps(bytes.NewReader(in), name)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := ParseSmaps(struct{ io.Reader }{bytes.NewReader(in)}, name)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(guessed, plain) {
				t.Errorf("%s: %d mappings with the room guessed, %d without, or they differ", name, len(guessed), len(plain))
			}
		}
	}
}

// mapsOf keeps the header lines of smaps: what /proc/PID/maps holds.
func mapsOf(smaps []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(smaps, []byte("\n")) {
		if i := bytes.IndexByte(line, ' '); i > 0 && bytes.IndexByte(line[:i], '-') > 0 {
			out = append(out, line...)
		}
	}
	return out
}

// TestPaddedValue: the word-at-a-time read of a counter's value agrees with
// strconv on every width and digit, and declines every other shape, which
// counterAt then reads byte by byte.
func TestPaddedValue(t *testing.T) {
	for _, v := range []uint64{0, 1, 9, 10, 42, 99, 100, 4096, 65535, 123456, 9999999, 10000000, 98765432, 99999999} {
		field := fmt.Sprintf("%8d", v)
		for _, tc := range []struct {
			tail    string
			inBytes bool
		}{{" kB\n", true}, {"\n", false}, {"\nRss:", false}} {
			in := []byte(field + tc.tail + "    ")
			got, n, ok := paddedValue(in, tc.inBytes)
			slow, slowN, slowOK := spacedValue(in, tc.inBytes)
			if !ok || got != v || n != slowN || !slowOK || slow != v {
				t.Errorf("paddedValue(%q) = %d, %d, %v; spacedValue %d, %d, %v; want %d", field+tc.tail, got, n, ok, slow, slowN, slowOK, v)
			}
		}
	}
	for _, in := range []string{
		"        \n    ",     // no digits
		"123456789 kB\n   ",  // wider than the column
		"      1x kB\n   ",   // not a digit
		"     1 2 kB\n   ",   // a space among the digits
		"      12 KB\n   ",   // not " kB"
		"      12 kB",        // too short to hold the unit and newline
		"      1/ kB\n   ",   // just below '0'
		"      1: kB\n   ",   // just above '9'
		"\t     12 kB\n    ", // a tab in the padding
	} {
		if v, _, ok := paddedValue([]byte(in), true); ok {
			t.Errorf("paddedValue(%q) = %d, true; want false", in, v)
		}
	}
	if _, _, ok := paddedValue([]byte("      12 kB\n   "), false); ok {
		t.Error(`a unitless counter followed by " kB" was taken`)
	}
}
