package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestErrorsNameTheProblem plays a user's slips: each is refused with
// the exit code and a message that says what is wrong, not what failed
// deep inside (a rename, an open of a /proc file), and never falls back
// to something else (explain's bundled example).
func TestErrorsNameTheProblem(t *testing.T) {
	dir := t.TempDir()
	smaps, err := os.ReadFile("../fixtures/smaps/arenas.smaps")
	if err != nil {
		t.Fatal(err)
	}
	// Cut in the middle of a line, as a copy that ran out of disk would be.
	cut := filepath.Join(dir, "cut.smaps")
	n := 3000
	for smaps[n-1] == '\n' || smaps[n] == '\n' {
		n++
	}
	if err := os.WriteFile(cut, smaps[:n], 0o644); err != nil {
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "a.json")
	if code := run(t, quiet(), "snapshot", "--smaps", "../fixtures/smaps/arenas.smaps", snap); code != 0 {
		t.Fatalf("snapshot: exit %d", code)
	}
	missing := strconv.Itoa(deadPID(t))
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"explain", "--pid", "0"}, ExitUsage, `invalid argument "0" for "--pid" flag: a process id is a positive number`},
		{[]string{"explain", "--pid", "-7"}, ExitUsage, "a process id is a positive number"},
		{[]string{"snapshot", "--pid=-1"}, ExitUsage, "a process id is a positive number"},
		{[]string{"watch", "--pid", "0"}, ExitUsage, "a process id is a positive number"},
		{[]string{"trim", "--pid", "0"}, ExitUsage, "a process id is a positive number"},
		{[]string{"mallocinfo", "--pid", "0"}, ExitUsage, "a process id is a positive number"},
		{[]string{"cgroup", missing}, ExitError, "process " + missing + ": no such process"},
		{[]string{"cgroup", "0"}, ExitUsage, "cgroup 0: a process id is a positive number"},
		{[]string{"snapshot", "--smaps", "../fixtures/smaps/arenas.smaps", dir}, ExitUsage, dir + " is a directory: give the snapshot's file name"},
		{[]string{"diff", snap, snap, "--fail-on", "rss:+10"}, ExitUsage, `rule "rss:+10": 10 has no unit: write rss:+10% for a percentage, or a size (rss:+10B`},
		{[]string{"pmap", cut}, ExitError, "cut.smaps:98: input ends mid-line (no newline): truncated"},
		{[]string{"explain", "--smaps", cut}, ExitError, "input ends mid-line (no newline): truncated"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			s, out, errOut := testStreams("", false, nil)
			code := Main(tt.args, &Deps{Streams: s, Demo: []byte("{}")})
			if code != tt.code || !strings.Contains(errOut.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out)
			}
		})
	}
	// A unit given, the same rule is a rule.
	if code := run(t, quiet(), "diff", snap, snap, "--fail-on", "rss:+10B"); code != ExitOK {
		t.Errorf("rss:+10B: exit %d", code)
	}
}

// TestSnapshotSaysWhatItWrote: on standard error, the file, whose
// snapshot and its RSS; nothing on standard output.
func TestSnapshotSaysWhatItWrote(t *testing.T) {
	file := filepath.Join(t.TempDir(), "before.json")
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "snapshot", "--smaps", "../fixtures/smaps/arenas.smaps", file); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "memdiag: wrote " + file + ": the snapshot of smaps ../fixtures/smaps/arenas.smaps, RSS "
	if !strings.HasPrefix(errOut.String(), want) || out.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want %q…", errOut, out, want)
	}
	if _, err := os.Stat(file); err != nil {
		t.Error(err)
	}
}

func quiet() *Streams { s, _, _ := testStreams("", false, nil); return s }

// deadPID is a pid no process has: one that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	for pid := 4194000; pid > 4000000; pid-- {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); os.IsNotExist(err) {
			return pid
		}
	}
	t.Skip("no free pid found")
	return 0
}

// TestOOMSaysWhen: a journalctl -k log dates the kill by its own clock; a
// saved dmesg cannot, and says so, with the kernel's seconds since boot.
func TestOOMSaysWhen(t *testing.T) {
	dmesg, err := os.ReadFile("../fixtures/cgroup/oom-v1.dmesg")
	if err != nil {
		t.Fatal(err)
	}
	// The same report as journalctl -k prints it (short-iso: the year and
	// zone are in the line).
	var journal strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(string(dmesg), "\n"), "\n") {
		if i := strings.Index(l, "] "); strings.HasPrefix(l, "[") && i > 0 {
			l = "2026-12-01T09:30:15+0000 node-7 kernel: " + l[i+2:]
		}
		journal.WriteString(l + "\n")
	}
	file := filepath.Join(t.TempDir(), "journal.txt")
	if err := os.WriteFile(file, []byte(journal.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "oom", file, "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["killed_at"] != "2026-12-01T09:30:15Z" || doc["killed_at_source"] != "as the log printed it" {
		t.Errorf("killed_at %v (%v), want 2026-12-01T09:30:15Z from the journal", doc["killed_at"], doc["killed_at_source"])
	}

	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "oom", "../fixtures/cgroup/oom-v1.dmesg"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out.String(), "at 13936.814049 s after boot (the log does not say when that boot was)") {
		t.Errorf("a saved dmesg: %s", strings.SplitN(out.String(), "\n", 2)[0])
	}
}
