package gdbinject

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/testprog"
)

// fakeGDB writes a shell script that stands in for gdb: it ignores its
// arguments and runs body.
func fakeGDB(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(testprog.PublicDir(t), "gdb") // nobody runs it too
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func startSleep(t *testing.T, cred *syscall.Credential) int {
	t.Helper()
	c := exec.Command("sleep", "60")
	c.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	return c.Process.Pid
}

// TestRunNeverWaitsForAHeldPipe: the target's user can open gdb's output
// pipe (/proc/GDB/fd/3) and keep it open after gdb exits; memdiag must not
// wait for an end of file that never comes (it once hung past --timeout,
// Ctrl-C and SIGTERM). Here gdb leaves a child holding it.
func TestRunNeverWaitsForAHeldPipe(t *testing.T) {
	gdb := fakeGDB(t, `sleep 30 3>&3 & echo "memdiag: done"; exit 0`)
	pid := startSleep(t, nil)
	start := time.Now()
	_, err := Injector{GDB: gdb, Timeout: 20 * time.Second, SkipCanary: true}.Run(context.Background(), pid, Job{What: "a test", Script: "\n"})
	if took := time.Since(start); took > 8*time.Second {
		t.Fatalf("Run took %v with the pipe held open", took)
	}
	if err == nil || !strings.Contains(err.Error(), "held the output pipe open") {
		t.Errorf("got %v, want the held pipe named", err)
	}
}

// TestGDBHoldsNothingOfOurs: gdb runs as the target's user, who may ptrace
// it, so it must have no controlling terminal (keystrokes pushed with
// TIOCSTI, once shown to run commands as root) and no key of our session
// keyring (readable by whoever possesses the keyring).
func TestGDBHoldsNothingOfOurs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running gdb as another user needs root")
	}
	desc := fmt.Sprintf("memdiag-test-secret-%d", os.Getpid())
	id, err := unix.AddKey("user", desc, []byte("secret"), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Skipf("no session keyring here: %v", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_SESSION_KEYRING, 0, 0)
	// Possessor may do everything, the owner and others nothing: only a
	// process that possesses our session keyring sees it.
	if err := unix.KeyctlSetperm(id, 0x3f000000); err != nil {
		t.Fatal(err)
	}
	gdb := fakeGDB(t, `set -- $(cut -d' ' -f6,7 /proc/$$/stat); echo "memdiag: pid $$ sid $1 tty $2"; cat /proc/keys`)
	pid := startSleep(t, &syscall.Credential{Uid: 65534, Gid: 65534})
	res, err := Injector{GDB: gdb, Timeout: 10 * time.Second, SkipCanary: true}.Run(context.Background(), pid, Job{What: "a test", Script: "\n"})
	if err != nil {
		t.Fatal(err)
	}
	log := string(res.Log)
	var gpid, sid, tty int
	if i := strings.Index(log, "memdiag: pid "); i < 0 {
		t.Fatalf("gdb said %q", log)
	} else {
		fmt.Sscanf(log[i:], "memdiag: pid %d sid %d tty %d", &gpid, &sid, &tty)
	}
	if sid != gpid || tty != 0 {
		t.Errorf("gdb %d is in session %d with terminal %d: want a session of its own and no terminal", gpid, sid, tty)
	}
	if strings.Contains(log, desc) {
		t.Errorf("gdb, as nobody, sees our session's key:\n%s", log)
	}
}
