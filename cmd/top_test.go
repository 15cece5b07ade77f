package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/memdiag/memdiag/proctop"
)

func TestTopFlags(t *testing.T) {
	var got *TopOptions
	r := runners{top: func(o *TopOptions) error { got = o; return nil }}
	parseOnly(t, r, []string{"top", "--user", "0", "--name", "java", "--reverse", "--diagnose", "3", "--limit", "7"}, "")
	if got.User != "0" || got.Name != "java" || !got.Reverse || got.Options.Top != 3 || got.Limit != 7 || got.Options.Keep == nil {
		t.Errorf("options %+v", got)
	}
	parseOnly(t, r, []string{"top"}, "")
	if got.Options.Keep != nil || got.Options.Top != 5 {
		t.Errorf("no filter given, yet Keep is set, or --diagnose is not 5: %+v", got.Options)
	}
	parseOnly(t, r, []string{"top", "--user", "no-such-user-here"}, `--user "no-such-user-here": no such user`)
	parseOnly(t, r, []string{"top", "--diagnose", "-1"}, "cannot be negative")
	parseOnly(t, r, []string{"top", "--rollup-budget", "-1s"}, "--rollup-budget cannot be negative")
	parseOnly(t, r, []string{"top", "--rollup-budget", "0"}, "")
	if got.Options.RollupBudget >= 0 {
		t.Errorf("--rollup-budget 0 (no limit) gave the library %v, not a negative (none)", got.Options.RollupBudget)
	}

	// --top, the old name of --diagnose, still works and says so on
	// standard error, never on standard output (JSON goes there).
	s, out, errOut := testStreams("", false, nil)
	root := newRootCmd(&Deps{Streams: s}, r)
	root.SetArgs([]string{"top", "--top", "2", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Options.Top != 2 || out.Len() != 0 || !strings.Contains(errOut.String(), "--top is deprecated") || !strings.Contains(errOut.String(), "--limit N") {
		t.Errorf("--top 2: diagnose %d, stdout %q, stderr %q", got.Options.Top, out, errOut)
	}
}

// sleeper starts `sleep` with an argument no other process has: its
// command name is sleep, its command line names it alone.
func sleeper(t *testing.T) (pid int, arg string) {
	t.Helper()
	arg = fmt.Sprintf("%d.%d", 3000+os.Getpid()%1000, os.Getpid())
	c := exec.Command("sleep", arg)
	if err := c.Start(); err != nil {
		t.Skipf("no sleep(1) to start: %v", err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return c.Process.Pid, arg
}

// TestTopNameUserAndCmdline: --name matches the command line, not only the
// 15-character name; --user keeps the user's processes; JSON names each
// process's user and command line.
func TestTopNameUserAndCmdline(t *testing.T) {
	pid, arg := sleeper(t)
	me, err := user.Current()
	if err != nil {
		t.Skipf("no user name for uid %d: %v", os.Getuid(), err)
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "top", "--name", arg, "--user", me.Username, "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Totals    struct{ Processes int } `json:"totals"`
		Processes []struct {
			PID     int      `json:"pid"`
			User    string   `json:"user"`
			Command string   `json:"command"`
			Cmdline []string `json:"cmdline"`
		} `json:"processes"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Processes) != 1 || doc.Totals.Processes != 1 {
		t.Fatalf("--name %s: %d processes (total %d), want the one sleep: %s", arg, len(doc.Processes), doc.Totals.Processes, out)
	}
	p := doc.Processes[0]
	if p.PID != pid || p.User != me.Username || p.Command != "sleep" || strings.Join(p.Cmdline, " ") != "sleep "+arg {
		t.Errorf("process %+v, want pid %d of %s, sleep %s", p, pid, me.Username, arg)
	}

	// Another user's processes only: the sleep is not among them.
	other := "65534"
	if os.Getuid() == 65534 {
		other = "0"
	}
	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "top", "--name", arg, "--user", other); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(out.String(), strconv.Itoa(pid)+"  ") || !strings.Contains(out.String(), "0 processes of user "+other) {
		t.Errorf("--user %s lists the sleep of uid %d:\n%s", other, os.Getuid(), out)
	}
}

// TestTopTable plays a user at an 80-column terminal: every line fits,
// the columns left out are named with the flag that shows them, the
// command line is there (clipped); with --wide, or into a pipe, every
// column is back. --reverse lists the smallest first; the footer names
// --limit.
func TestTopTable(t *testing.T) {
	sleeper(t)
	s, out, errOut := testStreams("", true, map[string]string{"COLUMNS": "80"})
	if code := run(t, s, "top", "--limit", "3", "--no-color"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	text := out.String()
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if n := utf8.RuneCountInString(l); n > 80 {
			t.Errorf("%d columns: %q", n, l)
		}
	}
	for _, want := range []string{"USER", "COMMAND LINE", "RSS+SWAP", "left out to fit 80 columns", "--wide shows every column", "--limit N shows more"} {
		if !strings.Contains(text, want) {
			t.Errorf("80 columns: no %q in\n%s", want, text)
		}
	}
	if header := strings.Split(text, "\n")[1]; strings.Contains(header, "THR") || strings.Contains(text, "--top") {
		t.Errorf("80 columns: THR kept or --top named:\n%s", text)
	}

	for _, tt := range []struct {
		name string
		tty  bool
		env  map[string]string
		args []string
	}{{"--wide", true, map[string]string{"COLUMNS": "80"}, []string{"--wide"}}, {"pipe", false, nil, nil}} {
		s, out, errOut = testStreams("", tt.tty, tt.env)
		if code := run(t, s, append([]string{"top", "--no-color", "--reverse", "--name", "sleep"}, tt.args...)...); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		text := out.String()
		if !strings.Contains(text, "THR") || !strings.Contains(text, "WHAT IT IS") || strings.Contains(text, "left out") || !strings.Contains(text, "smallest first") {
			t.Errorf("%s: not every column, or not reversed:\n%s", tt.name, text)
		}
	}
}

// TestTopReverseOrder: with --reverse the table's rows are the smallest
// processes, in ascending RSS + swap.
func TestTopReverseOrder(t *testing.T) {
	sc, err := proctop.Read(proctop.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sc.Processes) < 3 {
		t.Skipf("%d processes on this machine: too few to order", len(sc.Processes))
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "top", "--reverse", "--limit", "0", "--sort", "rss"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.HasPrefix(lines[1], "  PID") && !strings.Contains(lines[1], "PID  USER") {
		t.Fatalf("no header: %q", lines[1])
	}
	// The smallest processes (a few KiB: exited while read) come first,
	// the total last; the largest is not in the first rows.
	largest := strconv.Itoa(sc.Processes[0].PID)
	for _, l := range lines[2:4] {
		if f := strings.Fields(l); len(f) > 0 && f[0] == largest {
			t.Errorf("the largest process %s among the first rows of --reverse:\n%s", largest, out)
		}
	}
}

// TestTopHostileCmdline: a command line is whatever the process wrote;
// an escape sequence in it reaches the table escaped, and JSON as \u
// escapes, never raw.
func TestTopHostileCmdline(t *testing.T) {
	mark := fmt.Sprintf("hostile%d", os.Getpid())
	// bash stays (the ": " after sleep), its argv holding ESC and BEL.
	c := exec.Command("bash", "-c", "sleep 60; :", "\x1b]0;"+mark+"\a\x1b[2J")
	if err := c.Start(); err != nil {
		t.Skipf("no bash to start: %v", err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	for _, format := range []string{"table", "json"} {
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, "top", "--name", mark, "-o", format); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if strings.ContainsAny(out.String(), "\x1b\a") || !strings.Contains(out.String(), mark) {
			t.Errorf("-o %s: raw control bytes, or no row for the process:\n%q", format, out)
		}
		if format == "table" && !strings.Contains(out.String(), `\x1b]0;`+mark+`\x07\x1b[2J`) {
			t.Errorf("the table does not show the command line escaped:\n%s", out)
		}
	}
}
