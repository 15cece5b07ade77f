package mallocinfo_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/gdbtest"
	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/mallocinfo"
)

// TestCaptureAttacker is the attacker's loop of TestAttackCapture when
// MEMDIAG_ATTACK is set; run normally it does nothing. It watches the
// target's /tmp (and its working directory) for anything memdiag makes and
// does what the review did to it: renames its own gdb script over the
// capture's (a "shell" command gdb would run as root), and swaps the
// document for a symlink to a root-only file, then for a FIFO.
func TestCaptureAttacker(t *testing.T) {
	if os.Getenv("MEMDIAG_ATTACK") == "" {
		t.Skip("the attacker of TestAttackCapture; runs only as its helper")
	}
	cwd, tmp := os.Getenv("MEMDIAG_ATTACK_CWD"), os.Getenv("MEMDIAG_ATTACK_TMP")
	marker, secret := os.Getenv("MEMDIAG_ATTACK_MARKER"), os.Getenv("MEMDIAG_ATTACK_TARGET")
	var seen, swaps atomic.Int64
	var first atomic.Value
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			fmt.Printf("attacker: saw %d entries of memdiag's (first %v), swapped %d\n", seen.Load(), first.Load(), swaps.Load())
		}
	}()
	evil := filepath.Join(cwd, "evil.gdb")
	_ = os.WriteFile(evil, []byte("shell touch "+marker+"\n"), 0o644)
	ours := map[string]bool{"self.xml": true, "evil.gdb": true}
	for {
		// In the target's cwd anything but its own files is memdiag's; in
		// the shared /tmp, what the old capture made.
		var found []string
		entries, _ := os.ReadDir(cwd)
		for _, e := range entries {
			if !ours[e.Name()] {
				found = append(found, filepath.Join(cwd, e.Name()))
			}
		}
		entries, _ = os.ReadDir(tmp)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "memdiag-malloc-info") {
				found = append(found, filepath.Join(tmp, e.Name()))
			}
		}
		for _, p := range found {
			seen.Add(1)
			first.CompareAndSwap(nil, p)
			sub, _ := os.ReadDir(p)
			for _, s := range sub {
				q := filepath.Join(p, s.Name())
				switch {
				case strings.HasSuffix(s.Name(), ".gdb"):
					_ = exec.Command("cp", evil, q+".x").Run()
					if os.Rename(q+".x", q) == nil {
						swaps.Add(1)
					}
				case strings.HasSuffix(s.Name(), ".xml"):
					_ = os.Remove(q)
					if os.Symlink(secret, q) == nil {
						swaps.Add(1)
					}
				}
			}
		}
	}
}

// TestAttackCapture: a live capture used to make /tmp/memdiag-malloc-info-*
// owned by the target's user and keep gdb's command script there; the user
// renamed its own script over it and ran commands as root. Now the capture
// makes no file at all: the target writes into a buffer of its own memory
// and gdb copies it out over a pipe. The attacker loop watches the
// target's /tmp and working directory throughout; the capture must be
// right, and nothing of memdiag's may appear.
func TestAttackCapture(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	bin := testprog.BuildPublic(t, "mallocdemo")
	cwd := testprog.NobodysDir(t)
	proc := testprog.StartWith(t, testprog.Options{AsNobody: true, Dir: cwd}, bin, "story1", filepath.Join(cwd, "self.xml"))
	mi := mallinfo2(t, proc.Lines)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("<malloc>root only</malloc>"), 0o600); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(cwd, "pwned")
	stop := testprog.StartTestAsNobody(t, "TestCaptureAttacker", "MEMDIAG_ATTACK=capture",
		"MEMDIAG_ATTACK_CWD="+cwd, "MEMDIAG_ATTACK_TMP=/proc/"+strconv.Itoa(proc.PID())+"/root/tmp",
		"MEMDIAG_ATTACK_MARKER="+marker, "MEMDIAG_ATTACK_TARGET="+secret)
	time.Sleep(200 * time.Millisecond)
	for i := 0; i < 4; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		start := time.Now()
		// Three through gdb, the route with most to attack, and one read.
		info, err := mallocinfo.Capturer{UseGDB: i < 3}.Capture(ctx, proc.PID())
		cancel()
		t.Logf("capture %d under attack took %v", i, time.Since(start).Round(time.Millisecond))
		if gdbtest.Refused(t, err, proc.PID()) {
			continue
		}
		if err != nil {
			t.Fatalf("capture %d: %v", i, err)
		}
		s := mallocinfo.Analyze(info)
		if d := diff(s.Totals.RetainedFreeBytes, mi["freed"]); float64(d) > 0.02*float64(mi["freed"]) {
			t.Errorf("capture %d: retained %d B, the program freed %d B", i, s.Totals.RetainedFreeBytes, mi["freed"])
		}
	}
	said := stop()
	lines := strings.Split(strings.TrimSpace(said), "\n")
	t.Log(lines[len(lines)-1])
	if !strings.Contains(said, "attacker: saw 0 entries") {
		t.Errorf("the attacker loop did not run: %s", said)
	}
	if strings.Contains(said, "swapped 1") || !strings.Contains(lines[len(lines)-1], "saw 0 entries") {
		t.Errorf("the attacker found something of memdiag's: %s", lines[len(lines)-1])
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the attacker's command ran: %s exists", marker)
	}
}

// TestAttackExecSetuid: the target execs a setuid-root program the moment
// gdb appears with its pid. A root gdb used to attach to that root process,
// call into it and report its heap under the target's name. Now gdb runs as
// the target's user (the kernel refuses it the setuid process, or ignores
// the setuid bit of an exec while it traces), and a target that changed is
// never reported.
func TestAttackExecSetuid(t *testing.T) {
	testprog.NeedRoot(t)
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	const suid = "/usr/bin/passwd"
	if fi, err := os.Stat(suid); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		t.Skipf("no setuid %s to exec (%v)", suid, err)
	}
	bin := testprog.BuildPublic(t, "execsuid")
	for i := 0; i < 3; i++ {
		proc := testprog.StartWith(t, testprog.Options{AsNobody: true, Dir: testprog.NobodysDir(t)}, bin, suid)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		info, err := mallocinfo.Capturer{UseGDB: true, Timeout: 10 * time.Second}.Capture(ctx, proc.PID())
		cancel()
		if gdbtest.Refused(t, err, proc.PID()) {
			// No gdb ever names it: execsuid would wait for one forever.
			_ = proc.Cmd.Process.Kill()
			return
		}
		if err == nil {
			t.Fatalf("round %d: a capture of process %d, which exec'd %s, was reported as its own (%d arenas)", i, proc.PID(), suid, len(info.Arenas))
		}
		t.Logf("round %d: %v", i, err)
		status := readStatus(t, proc.PID())
		if !strings.Contains(status, "TracerPid:\t0") {
			t.Errorf("round %d: the target is left traced:\n%s", i, status)
		}
		if strings.Contains(status, "Uid:\t65534\t0") {
			t.Logf("round %d: the exec raised its euid to 0 (it was not traced when it exec'd)", i)
		}
	}
}
