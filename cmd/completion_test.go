package cmd

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/memdiag/memdiag/internal/proc"
)

// complete runs cobra's hidden __complete command, as the shells' scripts
// do, and returns the proposals and the directive line (":4": no files).
func complete(t *testing.T, procRoot string, args ...string) ([]string, string) {
	t.Helper()
	s, out, errOut := testStreams("", false, nil)
	if code := Main(append([]string{"__complete"}, args...), &Deps{Streams: s, Proc: proc.NewFS(procRoot)}); code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompleteFlagValues(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"top", "--sort", ""}, []string{"actual", "rss", "pss", "uss", "anon", "swap"}},
		{[]string{"top", "--sort", "p"}, []string{"pss"}},
		{[]string{"top", "--group-by", ""}, []string{"comm"}},
		{[]string{"pmap", "1", "--sort", "s"}, []string{"size", "swap"}},
		{[]string{"pmap", "1", "--class", "g"}, []string{"glibc-arena", "go-heap", "guard"}},
		// --class takes a list: the classes given stay, and are not proposed again.
		{[]string{"pmap", "1", "--class", "heap,s"}, []string{"heap,stack", "heap,shmem"}},
		{[]string{"trace", "--format", ""}, []string{"strace", "perf-trace", "sysdig", "sysdig-json", "bpftrace"}},
		{[]string{"trace", "x", "--group-by", "s"}, []string{"stack", "size"}},
		{[]string{"pmap", "-o", ""}, []string{"table", "json", "markdown"}},
		{[]string{"explain", "-o", "o"}, []string{"openmetrics"}},
		{[]string{"top", "--output", "j"}, []string{"json"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			got, directive := complete(t, "/proc", tt.args...)
			// -o may offer formats added since (html): the ones named must
			// be there; the other lists are exact, in their documented order.
			if f := tt.args[len(tt.args)-2]; f == "-o" || f == "--output" {
				got = slices.DeleteFunc(got, func(v string) bool { return !slices.Contains(tt.want, v) })
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("proposals (-want +got):\n%s", diff)
			}
			if directive != ":4" {
				t.Errorf("directive %q, want :4 (no file names)", directive)
			}
		})
	}
}

// TestCompletePIDs: --pid proposes live pids with their command names as
// the description; this test's own process is one.
func TestCompletePIDs(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	want := pid + "\t" + strings.TrimSpace(string(comm))
	for _, args := range [][]string{{"explain", "--pid", pid[:1]}, {"watch", "--pid", pid}, {"mallocinfo", "--pid", ""}, {"pmap", pid}} {
		got, _ := complete(t, "/proc", args...)
		found := false
		for _, g := range got {
			if !strings.HasPrefix(g, args[len(args)-1]) {
				t.Errorf("%q proposed %q", args, g)
			}
			found = found || g == want
		}
		if !found {
			t.Errorf("%q: %q not among %d proposals", args, want, len(got))
		}
	}
}

// TestCompletePIDsHostileNames: a command name is the process's own
// choice; its escape sequence is shown escaped, a tab in it cannot make a
// second field, and kernel threads (no memory) are left out.
func TestCompletePIDsHostileNames(t *testing.T) {
	root := t.TempDir()
	write := func(pid, file, text string) {
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("41", "comm", "\x1b]0;owned\a\tx\n")
	write("41", "statm", "1000 200 100 1 0 50 0\n")
	write("42", "comm", "kthreadd\n")
	write("42", "statm", "0 0 0 0 0 0 0\n")
	write("43", "comm", "nginx\n")
	write("43", "statm", "1000 200 100 1 0 50 0\n")
	got, _ := complete(t, root, "explain", "--pid", "4")
	want := []string{`41` + "\t" + `\x1b]0;owned\x07\x09x`, "43\tnginx"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("proposals (-want +got):\n%s", diff)
	}
}
