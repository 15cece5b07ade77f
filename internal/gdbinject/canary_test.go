package gdbinject

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/procmem"
	"github.com/memdiag/memdiag/internal/testprog"
)

// goodCanaryLog is what a gdb that harms nothing prints for canaryScript.
func goodCanaryLog(v vectorRegs) string {
	var b strings.Builder
	gprs := "fffffffffffffe00 0 1 2 3 4 5 6 7 8 9 a b c d e f 0"
	fmt.Fprintf(&b, "0x00007f in __GI___libc_read ()\nmemdiag: canary gprs before %s\n", gprs)
	b.WriteString("$1 = (void *) 0x7f0000\nmemdiag: canary strtod 1.5\nmemdiag: canary calls returned 0\n")
	for r := 0; r < v.count; r++ {
		fmt.Fprintf(&b, "memdiag: canary %s%d", v.name, r)
		for l := 0; l < v.lanes; l++ {
			fmt.Fprintf(&b, " %x", pattern(r, l))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "memdiag: canary gprs after %s\n[Inferior 1 (process 99) detached]\n", gprs)
	return b.String()
}

func TestCheckCanaryLog(t *testing.T) {
	v := vectorRegs{"ymm", 16, 4}
	good := goodCanaryLog(v)
	for _, tt := range []struct {
		name, log, want string
	}{
		{"healthy", good, ""},
		{"extended state not written", strings.Replace(good, "memdiag: canary strtod 1.5\nmemdiag: canary calls returned 0\n",
			"canary:12: Error in sourced command file:\nCouldn't write extended state status: Bad address.\n", 1),
			"the calls did not return; gdb said: canary:12: Error in sourced command file: | Couldn't write extended state status: Bad address."},
		{"a lane lost", strings.Replace(good, "4d454d4400000302", "5a5a5a5a5a5a5a5a", 1), "$ymm3 was 4d454d4400000300 4d454d4400000301 5a5a5a5a5a5a5a5a"},
		{"orig_rax lost", strings.Replace(good, "gprs after fffffffffffffe00 0 1 2 3 4 5 6 7 8 9 a b c d e f 0", "gprs after fffffffffffffe00 0 1 2 3 4 5 6 7 8 9 a b c d e f ffffffffffffffff", 1), "the general registers changed"},
		{"nothing printed", "ptrace: No such process.\n", "the calls did not return; gdb said: ptrace: No such process."},
		{"mmap failed", "memdiag: canary mmap failed\n", "mmap in the canary failed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := checkCanaryLog(tt.log, v)
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCanaryRealGDB proves this host's gdb, as memdiag and (as root) as
// another user. The verdict is the host's: a gdb that passes must leave
// the canary reaped and the verdict kept; one that fails (gdb 13 on a CPU
// with AMX tiles) must be refused with its version and its words. Both
// hold on every machine; neither skips.
func TestCanaryRealGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	users := map[string]proc.IDs{"memdiag's user": {UID: os.Geteuid(), GID: os.Getegid()}}
	if os.Geteuid() == 0 {
		users["nobody"] = proc.IDs{UID: testprog.Nobody, GID: testprog.Nobody}
	}
	for name, ids := range users {
		t.Run(name, func(t *testing.T) {
			var c Canary
			var said []string
			in := Injector{Notify: func(s string) { said = append(said, s) }}
			start := time.Now()
			err := c.prove(context.Background(), in, gdb, ids, 30*time.Second)
			took := time.Since(start)
			t.Logf("canary of %s as %s: %v in %v", gdb, name, err, took)
			switch {
			case errors.Is(err, ErrUnsafeHost):
				if !strings.Contains(err.Error(), "GNU gdb") || !strings.Contains(err.Error(), "failed memdiag's canary") {
					t.Errorf("the refusal names neither gdb's version nor the canary: %v", err)
				}
			case err != nil:
				t.Fatalf("the canary neither passed nor refused: %v", err)
			}
			if len(said) != 1 || !strings.Contains(said[0], "canary") {
				t.Errorf("told %q, want one note of the canary", said)
			}
			again := time.Now()
			if err2 := c.prove(context.Background(), in, gdb, ids, 30*time.Second); !errors.Is(err2, err) && (err2 == nil) != (err == nil) {
				t.Errorf("second verdict %v, first %v", err2, err)
			}
			if d := time.Since(again); d > 50*time.Millisecond || len(said) != 1 {
				t.Errorf("the second verdict took %v and %d notes: it was not kept", d, len(said))
			}
			if kids := children(t); len(kids) > 0 {
				t.Errorf("processes left behind: %v", kids)
			}
		})
	}
}

// children lists the test process's living children.
func children(t *testing.T) []string {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var kids []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, pid := range strings.Fields(string(b)) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			kids = append(kids, pid+" "+strings.TrimSpace(string(comm)))
		}
	}
	return kids
}

// brokenGDB is a stand-in gdb whose every run against a pid is recorded in
// the file returned; body runs for a run against a pid ($pid), after
// --version is answered as a gdb 13 would.
func brokenGDB(t *testing.T, body string) (gdb, runs string) {
	t.Helper()
	runs = filepath.Join(t.TempDir(), "runs")
	gdb = fakeGDB(t, fmt.Sprintf(`case " $* " in *" --version "*) echo "GNU gdb (Stand-in) 13.1"; exit 0;; esac
while [ $# -gt 0 ]; do [ "$1" = -p ] && pid=$2; shift; done
echo "$pid" >> %s
%s`, runs, body))
	return gdb, runs
}

// TestCanaryRefuses: a gdb that harms its canary as gdb 13 harms processes
// on a host with AMX tiles — it says it could not write the extended state
// back, and the canary's read fails — or harms it without a word, or
// prints every line right but kills it, is refused, and the target is
// never handed to it. A stand-in that harms nothing passes, so the
// refusals are the harm's, not the stand-in's.
func TestCanaryRefuses(t *testing.T) {
	good := filepath.Join(testprog.PublicDir(t), "good.log")
	if err := os.WriteFile(good, []byte(goodCanaryLog(hostVectorRegs(proc.FS{}))), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, body, want string
	}{
		{"extended state not written back", `echo "canary:40: Error in sourced command file:"; echo "Couldn't write extended state status: Bad address."; kill -KILL $pid`,
			"Couldn't write extended state status: Bad address."},
		{"silent harm", `cat ` + good + `; kill -SEGV $pid`, "(signal: segmentation fault)"},
		{"left stopped and killed", `cat ` + good + `; kill -STOP $pid; kill -TERM $pid`, "signal: terminated"},
		{"harmless", `cat ` + good, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gdb, runs := brokenGDB(t, tt.body)
			target := startSleep(t, nil)
			_, err := Injector{GDB: gdb, Timeout: 10 * time.Second}.Run(context.Background(), target, Job{What: "a test", Script: "\n"})
			b, _ := os.ReadFile(runs)
			ran := strings.Fields(string(b))
			if tt.want == "" {
				if err != nil || len(ran) != 2 || ran[1] != strconv.Itoa(target) {
					t.Fatalf("a harmless stand-in: %v; gdb ran against %v, want the canary then %d", err, ran, target)
				}
				return
			}
			if !errors.Is(err, ErrUnsafeHost) {
				t.Fatalf("got %v, want ErrUnsafeHost", err)
			}
			for _, w := range []string{tt.want, "GNU gdb (Stand-in) 13.1", fmt.Sprintf("memdiag did not touch process %d", target), "memdiag mallocinfo --pid"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the refusal lacks %q:\n%v", w, err)
				}
			}
			if len(ran) != 1 || ran[0] == strconv.Itoa(target) {
				t.Errorf("gdb ran against %v; the target is %d: only the canary may be reached", ran, target)
			}
			if _, state, err := proc.StartTime(fmt.Sprintf("/proc/%d", target)); err != nil || state != "S" {
				t.Errorf("the target's state is %q (%v), want it sleeping on", state, err)
			}
		})
	}
}

// TestZombieRefused: a child that has exited and is not reaped is refused
// as a zombie, in the memory reader's words, before gdb is started.
func TestZombieRefused(t *testing.T) {
	gdb, runs := brokenGDB(t, `echo "memdiag: ran"`)
	pid := startZombie(t)
	_, err := Injector{GDB: gdb, SkipCanary: true}.Run(context.Background(), pid, Job{What: "a test", Script: "\n"})
	if !errors.Is(err, procmem.ErrZombie) || !errors.Is(err, ErrNoProcess) {
		t.Errorf("got %v, want a zombie named", err)
	}
	if b, _ := os.ReadFile(runs); len(b) > 0 {
		t.Errorf("gdb was run against the zombie: %s", b)
	}
}

// startZombie returns the pid of a child that has exited and is not reaped
// until the test ends.
func startZombie(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Wait() })
	pid := c.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, state, err := proc.StartTime(fmt.Sprintf("/proc/%d", pid)); err == nil && state == "Z" {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("true did not become a zombie within 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeathNamed: a target that dies while gdb is attached is said to have
// died — a zombie when its parent has not reaped it, gone when it has —
// with gdb's last words, never "exec'd another program" (issue 19).
func TestDeathNamed(t *testing.T) {
	gdb, _ := brokenGDB(t, `echo "Couldn't write extended state status: Bad address."; kill -KILL $pid; sleep 0.2`)
	t.Run("a zombie", func(t *testing.T) {
		pid := startSleep(t, nil) // our child: not reaped until the test ends
		_, err := Injector{GDB: gdb, SkipCanary: true}.Run(context.Background(), pid, Job{What: "a test", Script: "\n"})
		want := fmt.Sprintf("process %d died while gdb was attached", pid)
		if !errors.Is(err, ErrRun) || !errors.Is(err, procmem.ErrZombie) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "gdb said: Couldn't write extended state") || strings.Contains(err.Error(), "exec'd") {
			t.Errorf("got %v, want %q, a zombie and gdb's words", err, want)
		}
	})
	t.Run("reaped", func(t *testing.T) {
		sh := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
		out, err := sh.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = sh.Process.Kill(); _ = sh.Wait() }()
		var pid int
		if _, err := fmt.Fscan(out, &pid); err != nil {
			t.Fatal(err)
		}
		_, err = Injector{GDB: gdb, SkipCanary: true}.Run(context.Background(), pid, Job{What: "a test", Script: "\n"})
		want := fmt.Sprintf("process %d died while gdb was attached (it has exited and been reaped)", pid)
		if !errors.Is(err, ErrRun) || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want %q", err, want)
		}
	})
}

// TestNoCommandSkipsTheCanary: SkipCanary is for tests' stand-in gdbs;
// no code but tests may set it.
func TestNoCommandSkipsTheCanary(t *testing.T) {
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), "SkipCanary:") {
			t.Errorf("%s sets SkipCanary", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCanaryCatchesABrokenRestart: this host's real gdb, made to break the
// interrupted system call as gdb 13 does on hosts with AMX tiles (after
// the script, orig_rax = -1 so that the kernel does not restart the call,
// rax = -516: ERESTART_RESTARTBLOCK reaches the program), is refused on
// the canary's own words — the register checks printed before the harm
// pass — and the target is never handed to it.
func TestCanaryCatchesABrokenRestart(t *testing.T) {
	real, err := exec.LookPath("gdb")
	if err != nil {
		t.Skipf("gdb not found (%v); .ci/run installs it", err)
	}
	runs := filepath.Join(t.TempDir(), "runs")
	gdb := fakeGDB(t, fmt.Sprintf(`for a; do [ "$prev" = -p ] && echo "$a" >> %s; prev=$a; done
n=$#
for a; do
  if [ "$a" = detach ]; then set -- "$@" 'set $orig_rax = -1' -ex 'set $rax = -516' -ex detach; else set -- "$@" "$a"; fi
done
shift $n
exec %s "$@"`, runs, real))
	target := startSleep(t, nil)
	_, err = Injector{GDB: gdb, Timeout: 30 * time.Second}.Run(context.Background(), target, Job{What: "a test", Script: "\n"})
	if !errors.Is(err, ErrUnsafeHost) || !strings.Contains(err.Error(), "Unknown error 516") {
		t.Errorf("got %v, want ErrUnsafeHost and the canary's words", err)
	}
	if b, _ := os.ReadFile(runs); strings.Contains(string(b), strconv.Itoa(target)) || len(strings.Fields(string(b))) != 1 {
		t.Errorf("gdb ran against %q; the target is %d: only the canary may be reached", b, target)
	}
}
