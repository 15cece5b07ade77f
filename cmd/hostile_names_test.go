package cmd

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
)

// hostileName is what issue 26 named a process: a backspace and a shift-out
// (the kernel escapes ESC and newline in comm, not these) and a UTF-8 C1
// CSI, U+009B, which some terminals take for ESC [.
const hostileName = "\b\x0e\xc2\x9b"

// rawHostile reports which of hostileName's bytes b holds raw.
func rawHostile(b []byte) []string {
	var raw []string
	for _, s := range []string{"\b", "\x0e", "\xc2\x9b"} {
		if bytes.Contains(b, []byte(s)) {
			raw = append(raw, strconv.Quote(s))
		}
	}
	return raw
}

// TestHostileNamesEscaped plays the user: a process of nobody's names
// itself hostileName (writing /proc/self/comm), and a file name holds it
// too. Whatever memdiag prints of them, on stdout or stderr, holds none of
// the bytes raw — and the name is there, escaped, where a table shows it.
func TestHostileNamesEscaped(t *testing.T) {
	testprog.NeedRoot(t)
	// sh writes its own comm, then stays (an exec would rename it).
	c := exec.Command("sh", "-c", `printf '\010\016\302\233' > /proc/self/comm; while :; do sleep 1; done`)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}, Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL); _ = c.Wait() })
	pid := strconv.Itoa(c.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + pid + "/comm")
		if strings.TrimSuffix(string(b), "\n") == hostileName {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("comm is %q, not %q", b, hostileName)
		}
		time.Sleep(20 * time.Millisecond)
	}
	badFile := filepath.Join(t.TempDir(), hostileName)
	for _, args := range [][]string{
		// nobody's processes only, all of them: a busy host has more
		// than a table's rows of bigger ones.
		{"top", "--user", strconv.Itoa(testprog.Nobody), "--limit", "0"},
		{"pmap", pid},
		{"explain", "--pid", pid},
		{"mallocinfo", "--pid", pid},
		{"watch", "--pid", pid, "--count", "1", "--interval", "100ms"},
		{"cgroup", pid},
		{"oom", badFile},
		{"pmap", badFile},
		{"explain", "--smaps", badFile},
	} {
		s, out, errOut := testStreams("", false, nil)
		code := run(t, s, args...)
		for name, b := range map[string][]byte{"stdout": out.Bytes(), "stderr": errOut.Bytes()} {
			if raw := rawHostile(b); raw != nil {
				t.Errorf("memdiag %s (exit %d): %s holds %s raw:\n%q", strings.Join(args, " "), code, name, strings.Join(raw, ", "), b)
			}
		}
		if args[0] == "top" && !strings.Contains(out.String(), `\x08\x0e\x9b`) {
			t.Errorf("memdiag top does not show the process, escaped:\n%s", out)
		}
		if args[0] == "oom" && !strings.Contains(errOut.String(), `\x08\x0e\x9b`) {
			t.Errorf("memdiag oom: the error does not name the file, escaped: %s", errOut)
		}
	}
}

// TestHostileNamesInJSON plays the user again: a process of nobody's names
// itself with a right-to-left override and a C1 NEL. memdiag top -o json
// writes them as \u202e and \u0085, never raw, and the document is valid
// and decodes to the name.
func TestHostileNamesInJSON(t *testing.T) {
	testprog.NeedRoot(t)
	const name = "x\u202eexe\u0085 " // 9 bytes, within comm's 15; a NEL and a space last, which Go's TrimSpace would take
	c := exec.Command("sh", "-c", `printf 'x\342\200\256exe\302\205 ' > /proc/self/comm; while :; do sleep 1; done`)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: testprog.Nobody, Gid: testprog.Nobody}, Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL); _ = c.Wait() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(c.Process.Pid) + "/comm")
		if strings.TrimSuffix(string(b), "\n") == name {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("comm is %q, not %q", b, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "top", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	b := out.Bytes()
	if bytes.Contains(b, []byte("\u202e")) || bytes.Contains(b, []byte("\u0085")) {
		t.Errorf("the JSON holds the name raw")
	}
	if !bytes.Contains(b, []byte(`"x\u202eexe\u0085 "`)) {
		t.Errorf("the JSON lacks the name, escaped")
	}
	var doc struct {
		Processes []struct {
			PID     int
			Command string
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("invalid JSON: %v", err)
	}
	got := "(absent)"
	for _, p := range doc.Processes {
		if p.PID == c.Process.Pid {
			got = p.Command
		}
	}
	if got != name {
		t.Errorf("process %d is %q in the decoded document, want %q", c.Process.Pid, got, name)
	}
}
