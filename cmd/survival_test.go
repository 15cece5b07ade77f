package cmd

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// TestLivePathsLeaveTheTargetAlive is issue 19's bar for every path that
// calls a function in a process through gdb: a sleep under it (with the
// allocator preloaded where the path is jemalloc's or tcmalloc's) must exit
// 0, on time, saying nothing — whether the path ran or, where this host's
// gdb fails memdiag's canary, refused. The test never skips for the host's
// gdb: on a host where gdb harms processes it asserts the refusal.
func TestLivePathsLeaveTheTargetAlive(t *testing.T) {
	needGDB(t)
	const nap = 8 * time.Second
	jemalloc, tcmalloc := "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
	// The target is sh's child, not ours: a parent that waits for its
	// child while it also traces it (glibc's trim reads the heap first,
	// stopping the threads with ptrace) would take the stops meant for the
	// tracer. sh reports the sleep's exit status.
	type napper struct {
		name    string
		cmd     *exec.Cmd
		pid     int
		stderr  bytes.Buffer
		started time.Time
		status  chan string
	}
	var napping []*napper
	top := t
	for _, tt := range []struct {
		name, preload, pkg string
		args               []string
	}{
		{"jemalloc's statistics", jemalloc, "libjemalloc2", []string{"mallocinfo", "--pid"}},
		{"tcmalloc's statistics", tcmalloc, "libtcmalloc-minimal4", []string{"mallocinfo", "--pid"}},
		{"glibc's malloc_info through gdb", "", "", []string{"mallocinfo", "--gdb", "--pid"}},
		{"glibc's trim", "", "", []string{"trim", "--pid"}},
		{"jemalloc's trim", jemalloc, "libjemalloc2", []string{"trim", "--pid"}},
		{"tcmalloc's trim", tcmalloc, "libtcmalloc-minimal4", []string{"trim", "--pid"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := &napper{name: tt.name, status: make(chan string, 1)}
			n.cmd = exec.Command("sh", "-c", `sleep "$1" & echo $!; wait $!; echo "exit $?"`, "sh", strconv.Itoa(int(nap/time.Second)))
			if tt.preload != "" {
				if _, err := os.Stat(tt.preload); err != nil {
					t.Skipf("%v; .ci/run installs %s", err, tt.pkg)
				}
				n.cmd.Env = append(os.Environ(), "LD_PRELOAD="+tt.preload)
			}
			n.cmd.Stderr = &n.stderr
			out, err := n.cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := n.cmd.Start(); err != nil {
				t.Fatal(err)
			}
			n.started = time.Now()
			// Reaped when the whole test ends: sh must live to report.
			top.Cleanup(func() { _ = n.cmd.Process.Kill(); _ = syscall.Kill(n.pid, syscall.SIGKILL); _ = n.cmd.Wait() })
			lines := bufio.NewScanner(out)
			if !lines.Scan() {
				t.Fatal("sh did not say the sleep's pid")
			}
			if n.pid, err = strconv.Atoi(lines.Text()); err != nil {
				t.Fatal(err)
			}
			go func() {
				lines.Scan()
				n.status <- lines.Text()
			}()
			napping = append(napping, n)
			waitAsleep(t, n.pid)
			s, _, errOut := testStreams("", false, nil)
			code := run(t, s, append(tt.args, strconv.Itoa(n.pid))...)
			switch {
			case code == 0:
				t.Logf("ran in %v", time.Since(n.started).Round(time.Millisecond))
			case code == 1 && strings.Contains(errOut.String(), "failed memdiag's canary"):
				t.Logf("refused on this host: %s", errOut)
			default:
				t.Errorf("exit %d: %s", code, errOut)
			}
			if took := time.Since(n.started); took > nap-time.Second {
				t.Errorf("the path took %v, near the target's %v nap: what follows proves less", took, nap)
			}
		})
	}
	// The naps overlap the paths that follow: waited for together.
	for _, n := range napping {
		status := <-n.status
		slept := time.Since(n.started)
		if status != "exit 0" || n.stderr.Len() > 0 || slept < nap-100*time.Millisecond {
			t.Errorf("%s: the target slept %v of its %v and sh said %q; it said %q", n.name, slept.Round(time.Millisecond), nap, status, n.stderr.String())
		}
	}
}

// waitAsleep waits until process pid sleeps (in clock_nanosleep).
func waitAsleep(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids, err := proc.ReadStatus(fmt.Sprintf("/proc/%d", pid), pid)
		_, state, serr := proc.StartTime(fmt.Sprintf("/proc/%d", pid))
		if err == nil && serr == nil && ids.Name == "sleep" && state == "S" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d did not fall asleep within 5 s", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestZombieSameEverywhere: a pid that has exited and is not reaped gets
// one message from every command that calls into a process, the memory
// reader's — not "not dynamically linked with glibc" (gdb's route, before)
// or "no allocator library mapped" (trim, before).
func TestZombieSameEverywhere(t *testing.T) {
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Wait() }()
	pid := c.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, state, err := proc.StartTime(fmt.Sprintf("/proc/%d", pid)); err == nil && state == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("true did not become a zombie within 5 s")
		}
	}
	want := fmt.Sprintf("memdiag: no such process: process %d: process has exited (a zombie)\n", pid)
	for _, args := range [][]string{{"mallocinfo", "--pid"}, {"mallocinfo", "--gdb", "--pid"}, {"trim", "--pid"}, {"trim", "--dry-run", "--pid"}} {
		s, _, errOut := testStreams("", false, nil)
		if code := run(t, s, append(args, strconv.Itoa(pid))...); code != 1 || errOut.String() != want {
			t.Errorf("%v: exit %d, %q; want 1, %q", args, code, errOut, want)
		}
	}
}
