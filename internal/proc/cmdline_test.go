package proc

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCmdline(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string
	}{
		{"java", "java\x00-XX:MaxDirectMemorySize=64m\x00-jar\x00app.jar\x00", []string{"java", "-XX:MaxDirectMemorySize=64m", "-jar", "app.jar"}},
		{"spaces kept", "a b\x00c\x00", []string{"a b", "c"}},
		{"empty argument", "a\x00\x00", []string{"a", ""}},
		{"rewritten, no final NUL", "nginx: worker process", []string{"nginx: worker process"}},
		{"kernel thread", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCmdline(strings.NewReader(tc.text), "cmdline")
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
	long := strings.NewReader(strings.Repeat("a", maxCmdline+1))
	if _, err := parseCmdline(long, "cmdline"); err == nil || !strings.Contains(err.Error(), "cmdline: longer than") {
		t.Errorf("an over-long command line: %v", err)
	}
}

// FuzzParseCmdline is a round trip: the arguments joined by NULs, with the
// final NUL the kernel writes, parse to the same arguments.
func FuzzParseCmdline(f *testing.F) {
	f.Add(string(readFixture(f, "mapper.cmdline")))
	f.Add("a\x00\x00b")
	f.Fuzz(func(t *testing.T, text string) {
		args, err := parseCmdline(strings.NewReader(text), "cmdline")
		if err != nil {
			t.Fatal(err) // every input under the bound is arguments
		}
		if len(args) == 0 {
			if text != "" {
				t.Fatalf("%q gave no arguments", text)
			}
			return
		}
		again, err := parseCmdline(strings.NewReader(strings.Join(args, "\x00")+"\x00"), "cmdline")
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(args, again); d != "" {
			t.Fatalf("round trip of %q (-first +again)\n%s", text, d)
		}
	})
}
