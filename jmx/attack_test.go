package jmx_test

// The attacker's tests of issue 10: a JVM runs as nobody, and nobody —
// the JVM's own user, who owns its working directory and can write /tmp —
// races memdiag, which runs as root. Each test says what the attack was
// and checks that it fails. The attacker loops are this test binary run
// as nobody (TestAttacker, selected by MEMDIAG_ATTACK).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/testprog"
	"github.com/memdiag/memdiag/jmx"
)

// startNobodysJVM runs Alloc as nobody, in a working directory nobody owns.
func startNobodysJVM(t *testing.T, flags ...string) (*testprog.Proc, string) {
	t.Helper()
	testprog.NeedRoot(t)
	cwd := testprog.NobodysDir(t)
	return testprog.StartJVM(t, testprog.JVM{Class: "Alloc", Flags: append([]string{"-Xmx64m", "-XX:+UseSerialGC"}, flags...),
		Args: []string{"8", "1", "1", filepath.Join(cwd, "mapped.bin")}, Options: testprog.Options{AsNobody: true, Dir: cwd}}), cwd
}

// TestAttacker is the attacker's loop when MEMDIAG_ATTACK names one; run
// normally it does nothing.
func TestAttacker(t *testing.T) {
	mode := os.Getenv("MEMDIAG_ATTACK")
	if mode == "" {
		t.Skip("the attacker of the attack tests; runs only as their helper")
	}
	name, target := os.Getenv("MEMDIAG_ATTACK_NAME"), os.Getenv("MEMDIAG_ATTACK_TARGET")
	dirs := strings.Split(os.Getenv("MEMDIAG_ATTACK_DIRS"), ":")
	var swaps atomic.Int64
	go func() {
		// It is killed, never returns: the count so far is printed as it goes.
		for range time.Tick(100 * time.Millisecond) {
			fmt.Printf("attacker %s: %d swaps\n", mode, swaps.Load())
		}
	}()
	switch mode {
	case "trigger":
		// Put a symlink to root's file where memdiag makes the trigger,
		// hoping for a chown by path.
		for {
			for _, d := range dirs {
				p := filepath.Join(d, name)
				_ = os.Remove(p)
				if os.Symlink(target, p) == nil {
					swaps.Add(1)
				}
			}
		}
	case "socket":
		// Flip the socket name between a listener of the attacker's and a
		// symlink to a root-only socket.
		own := filepath.Join(dirs[0], "own.sock")
		l, err := net.Listen("unix", own)
		if err != nil {
			fmt.Println("attacker: listen:", err)
			return
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprint(c, "0\nATTACKER\n")
				c.Close()
			}
		}()
		p := filepath.Join(dirs[1], name)
		for i := 0; ; i++ {
			tmp := p + ".new"
			_ = os.Remove(tmp)
			var err error
			if i%2 == 0 {
				err = os.Link(own, tmp)
			} else {
				err = os.Symlink(target, tmp)
			}
			if err == nil && os.Rename(tmp, p) == nil {
				swaps.Add(1)
			}
		}
	}
}

// TestAttackTriggerChown: memdiag used to create .attach_pidN as root and
// then chown it by path; a symlink swapped in between made a root-owned
// file nobody's. Now the file is created as the JVM's user, never chowned.
func TestAttackTriggerChown(t *testing.T) {
	p, cwd := startNobodysJVM(t)
	nspid := strconv.Itoa(p.PID())
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stop := testprog.StartTestAsNobody(t, "TestAttacker", "MEMDIAG_ATTACK=trigger",
		"MEMDIAG_ATTACK_NAME=.attach_pid"+nspid, "MEMDIAG_ATTACK_TARGET="+secret, "MEMDIAG_ATTACK_DIRS="+cwd+":/tmp")
	time.Sleep(200 * time.Millisecond)
	ok := 0
	for i := 0; i < 5; i++ {
		// Without the socket every round starts the listener again.
		_ = os.Remove("/tmp/.java_pid" + nspid)
		_, err := jmx.Attacher{Timeout: time.Second}.Run(context.Background(), p.PID(), "VM.version")
		if err == nil {
			ok++
		} else {
			t.Logf("round %d: %v", i, err)
		}
	}
	t.Logf("%s; %d of 5 attaches answered", lastLine(stop()), ok)
	var st syscall.Stat_t
	if err := syscall.Stat(secret, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 || st.Mode&0o777 != 0o600 {
		t.Errorf("root's file is now uid %d mode %#o: the attack worked", st.Uid, st.Mode&0o777)
	}
	_ = os.Remove("/tmp/.attach_pid" + nspid)
}

// TestAttackSocketFlip: the socket name flipped between the attacker's own
// listener and a symlink to a root-only socket made memdiag send a jcmd
// command to root's socket and print the reply. Now the name is opened
// without following it, and the listener must be the JVM itself.
func TestAttackSocketFlip(t *testing.T) {
	p, _ := startNobodysJVM(t, "-XX:+DisableAttachMechanism")
	nspid := strconv.Itoa(p.PID())
	rootSock := filepath.Join(t.TempDir(), "root.sock")
	l, err := net.Listen("unix", rootSock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var rootAccepts atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			rootAccepts.Add(1)
			fmt.Fprint(c, "0\nROOT-SECRET\n")
			c.Close()
		}
	}()
	attackDir := testprog.NobodysDir(t)
	stop := testprog.StartTestAsNobody(t, "TestAttacker", "MEMDIAG_ATTACK=socket",
		"MEMDIAG_ATTACK_NAME=.java_pid"+nspid, "MEMDIAG_ATTACK_TARGET="+rootSock, "MEMDIAG_ATTACK_DIRS="+attackDir+":/tmp")
	defer os.Remove("/tmp/.java_pid" + nspid)
	time.Sleep(200 * time.Millisecond)
	refusals := map[string]int{}
	for i := 0; i < 40; i++ {
		out, err := jmx.Attacher{Timeout: time.Second}.Run(context.Background(), p.PID(), "VM.version")
		if err == nil || strings.Contains(out, "SECRET") || strings.Contains(out, "ATTACKER") {
			t.Fatalf("round %d: memdiag took an answer %q (%v)", i, out, err)
		}
		switch msg := err.Error(); {
		case strings.Contains(msg, "not by the JVM"):
			refusals["listener is not the JVM"]++
		case strings.Contains(msg, "not a socket"):
			refusals["a symlink, not a socket"]++
		case errors.Is(err, jmx.ErrAttachDisabled):
			refusals["name missing, JVM cannot attach"]++
		default:
			refusals[msg]++
		}
	}
	t.Logf("%s; refusals %v", lastLine(stop()), refusals)
	if n := rootAccepts.Load(); n != 0 {
		t.Errorf("root's socket accepted %d connections", n)
	}
}

// TestAttackHsperfForged: another user's /tmp/hsperfdata_x/PID used to be
// read as the JVM's (a forged file showed 93 GiB of heap; a 3 GiB sparse
// one cost 3 GB of memory). Only the file owned by the JVM's uid counts.
func TestAttackHsperfForged(t *testing.T) {
	testprog.NeedRoot(t)
	p := startJVM(t, "-XX:+UseSerialGC") // root's JVM
	pid := strconv.Itoa(p.PID())
	real, err := os.ReadFile("/tmp/hsperfdata_root/" + pid)
	if err != nil {
		t.Skipf("no hsperfdata of root's JVM: %v", err)
	}
	for _, d := range []string{"hsperfdata_aaaa", "hsperfdata_zzzz"} {
		dir := filepath.Join("/tmp", d)
		_ = os.RemoveAll(dir) // left by a run that was killed
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		if err := os.Chown(dir, testprog.Nobody, testprog.Nobody); err != nil {
			t.Fatal(err)
		}
	}
	// A copy of the JVM's file in another user's directory, and a 3 GiB
	// sparse file, both owned by nobody.
	forged := bytes.Clone(real)
	mustChown(t, writeFile(t, "/tmp/hsperfdata_aaaa/"+pid, forged))
	f, err := os.Create("/tmp/hsperfdata_zzzz/" + pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mustChown(t, f.Name())

	m, err := jmx.ReadPID(context.Background(), p.PID(), jmx.ReadOptions{NoAttach: true})
	if err != nil {
		t.Fatal(err)
	}
	if src := strings.Join(m.Sources, " "); !strings.Contains(src, "/tmp/hsperfdata_root/"+pid) {
		t.Errorf("sources %q: not the JVM's own hsperfdata; notes %v", src, m.Notes)
	}
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustChown(t *testing.T, path string) {
	t.Helper()
	if err := os.Chown(path, testprog.Nobody, testprog.Nobody); err != nil {
		t.Fatal(err)
	}
}

// TestNoSignalWithoutAttach: a JVM that cannot attach
// (-XX:+DisableAttachMechanism) gets no signal: memdiag refuses at once,
// saying why, and the JVM's output holds no thread dump. Under -Xrs the
// JVM opens its listener at startup (so memdiag connects, no signal
// needed) but does not catch SIGQUIT: with its socket gone, memdiag must
// refuse rather than send a signal that would end it.
func TestNoSignalWithoutAttach(t *testing.T) {
	refused := func(t *testing.T, p *testprog.Proc, want string) {
		t.Helper()
		start := time.Now()
		_, err := jmx.Attacher{Timeout: 10 * time.Second}.Run(context.Background(), p.PID(), "VM.version")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("refusal took %v", took)
		}
		if !errors.Is(err, jmx.ErrAttachDisabled) || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want a refusal before any signal, naming %q", err, want)
		}
		if err := syscall.Kill(p.PID(), 0); err != nil {
			t.Errorf("the JVM is gone: %v", err)
		}
		time.Sleep(300 * time.Millisecond) // a thread dump would be written by now
		if rest := p.Finish(t); strings.Contains(rest, "Full thread dump") {
			t.Errorf("the JVM printed a thread dump: it was signalled")
		}
	}
	t.Run("DisableAttachMechanism", func(t *testing.T) {
		p, _ := startNobodysJVM(t, "-XX:+DisableAttachMechanism")
		refused(t, p, "DisableAttachMechanism")
	})
	t.Run("Xrs", func(t *testing.T) {
		p, _ := startNobodysJVM(t, "-Xrs")
		if _, err := (jmx.Attacher{Timeout: 5 * time.Second}).Run(context.Background(), p.PID(), "VM.version"); err != nil {
			t.Errorf("-Xrs starts the listener at startup; attaching: %v", err)
		}
		if err := os.Remove("/tmp/.java_pid" + strconv.Itoa(p.PID())); err != nil {
			t.Fatal(err)
		}
		refused(t, p, "does not catch SIGQUIT")
	})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "attacker") {
			return lines[i]
		}
	}
	return "attacker said: " + strings.TrimSpace(s)
}

// TestAttachNobodysJVM: root attaching to another user's JVM works, with
// the trigger made as that user.
func TestAttachNobodysJVM(t *testing.T) {
	p, _ := startNobodysJVM(t, "-XX:NativeMemoryTracking=summary")
	m, err := jmx.ReadPID(context.Background(), p.PID(), jmx.ReadOptions{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if m.HeapRange == nil || m.NMT == nil || !strings.Contains(strings.Join(m.Sources, " "), "/tmp/hsperfdata_nobody/") {
		t.Errorf("heap range %v, NMT %v, sources %v; notes %v", m.HeapRange, m.NMT != nil, m.Sources, m.Notes)
	}
	if max := m.Heap.MaxBytes; max == nil || *max != 64<<20 {
		t.Errorf("heap max %v, want -Xmx64m", max)
	}
}

// TestAttachWithCapabilitiesOnly: docs/security.md's least privilege —
// not root, only CAP_SYS_PTRACE, CAP_KILL, CAP_SETUID and CAP_SETGID —
// attaches to another user's JVM, starting its listener.
func TestAttachWithCapabilitiesOnly(t *testing.T) {
	if pid := os.Getenv("MEMDIAG_CAPS_PID"); pid != "" {
		n, _ := strconv.Atoi(pid)
		m, err := jmx.ReadPID(context.Background(), n, jmx.ReadOptions{Timeout: 10 * time.Second})
		if err != nil {
			fmt.Printf("error: %v\n", err)
			return
		}
		fmt.Printf("heap range %v, hsperfdata %v, notes %q\n", m.HeapRange != nil, strings.Contains(strings.Join(m.Sources, " "), "hsperfdata"), m.Notes)
		return
	}
	p, _ := startNobodysJVM(t)
	caps := []uintptr{unix.CAP_SYS_PTRACE, unix.CAP_KILL, unix.CAP_SETUID, unix.CAP_SETGID}
	out := string(testprog.RunTestAs(t, 1, caps, "TestAttachWithCapabilitiesOnly", "MEMDIAG_CAPS_PID="+strconv.Itoa(p.PID())))
	if !strings.Contains(out, "heap range true, hsperfdata true") {
		t.Errorf("as uid 1 with %d capabilities: %s", len(caps), out)
	}
}
