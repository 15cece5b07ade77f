//go:build linux && amd64

package record

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/internal/testprog"
)

// forkkeepRun is what forkkeep printed: its pid, and each child's pid and
// bytes kept.
type forkkeepRun struct {
	parent, parentKept int
	children           map[int]uint64
}

// recordForkkeep records fixtures/programs/forkkeep.c from its start. Its
// children wait for a byte on stdin before they allocate: following forks,
// it is written once both children's probes are attached (OnFollow), so
// that no allocation falls in the window between fork and attach whatever
// the machine's load; otherwise at once. The children exit once they have
// said what they kept; stdin is closed then, the parent exits too, and so
// does the recording.
func recordForkkeep(t *testing.T, o Options, n int) (*Result, forkkeepRun) {
	t.Helper()
	testprog.NeedRoot(t)
	bin := testprog.Build(t, "forkkeep", "-fno-omit-frame-pointer")
	cmd, stdin, stdout, h := startHeldPiped(t, bin, strconv.Itoa(n))
	var closeOnce sync.Once
	closeIn := func() { closeOnce.Do(func() { stdin.Close() }) }
	t.Cleanup(func() { h.Close(); closeIn(); _ = cmd.Wait() })
	goAhead := func() {
		if _, err := io.WriteString(stdin, "gg"); err != nil {
			t.Errorf("writing the go-ahead: %v", err)
		}
	}
	run := forkkeepRun{children: map[int]uint64{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var pid int
			var kept uint64
			if _, err := fmt.Sscanf(sc.Text(), "child %d kept %d", &pid, &kept); err == nil {
				run.children[pid] = kept
				if len(run.children) == 2 {
					closeIn()
				}
				continue
			}
			fmt.Sscanf(sc.Text(), "parent %d kept %d", &run.parent, &run.parentKept)
		}
	}()
	followed := 0
	o.PID = cmd.Process.Pid
	o.OnFollow = func(int) {
		if followed++; followed == 2 {
			goAhead()
		}
	}
	o.Ready = func() error {
		if err := h.Release(); err != nil {
			return err
		}
		if !o.FollowForks {
			goAhead()
		}
		return nil
	}
	// The program ends the recording; the bound only keeps a broken test
	// from hanging.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Record(ctx, o)
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	closeIn()
	<-done
	if ctx.Err() != nil {
		t.Fatalf("the recording did not end with the program (it printed parent %d, children %v)", run.parent, run.children)
	}
	if left := bpfDescriptors(t); len(left) > 0 {
		t.Errorf("probes left attached after Record returned: %v", left)
	}
	if run.parent != o.PID || len(run.children) != 2 {
		t.Fatalf("forkkeep printed parent %d, children %v; want parent %d and 2 children", run.parent, run.children, o.PID)
	}
	return res, run
}

func hasFrame(s Stack, fn string) bool {
	for _, f := range s.Frames {
		if f.Func == fn {
			return true
		}
	}
	return false
}

func TestRecordFollowForks(t *testing.T) {
	const n = 500
	res, run := recordForkkeep(t, Options{FollowForks: true}, n)
	var truth uint64
	for _, kept := range run.children {
		truth += kept
	}
	if truth != 2*n*10240 {
		t.Fatalf("children kept %d B; forkkeep should keep 2·%d·10240", truth, n)
	}
	// The two leading stacks are child_keeper's, one in each child, with
	// what each kept (reported at its exit).
	if len(res.Stacks) < 2 {
		t.Fatalf("%d stacks; want child_keeper's in each child", len(res.Stacks))
	}
	var got uint64
	for _, s := range res.Stacks[:2] {
		kept, ok := run.children[s.PID]
		if !ok || !hasFrame(s, "child_keeper") {
			t.Fatalf("leading stack of process %d: %v; want child_keeper in a child (%v)", s.PID, s.Frames, run.children)
		}
		if !within(s.OutstandingBytes, kept, 0.02) {
			t.Errorf("child %d: child_keeper holds %d B; it kept %d", s.PID, s.OutstandingBytes, kept)
		}
		got += s.OutstandingBytes
	}
	if res.Stacks[0].PID == res.Stacks[1].PID {
		t.Errorf("both leading stacks in process %d; want one per child", res.Stacks[0].PID)
	}
	if !within(got, truth, 0.02) {
		t.Errorf("child_keeper holds %d B in the children; they kept %d", got, truth)
	}
	for _, s := range res.Stacks {
		if s.PID == run.parent && hasFrame(s, "child_keeper") {
			t.Errorf("child_keeper's allocations counted in the parent: %+v", s)
		}
		if s.PID == run.parent && hasFrame(s, "parent_keeper") && s.OutstandingBytes != uint64(run.parentKept) {
			t.Errorf("parent_keeper holds %d B; the parent kept %d", s.OutstandingBytes, run.parentKept)
		}
	}
	if len(res.Processes) != 3 || res.Processes[0].PID != run.parent {
		t.Fatalf("processes %+v; want the parent %d first, then its 2 children", res.Processes, run.parent)
	}
	for _, p := range res.Processes[1:] {
		if _, ok := run.children[p.PID]; !ok || p.PPID != run.parent || !p.Exited || p.AttachDelay <= 0 || p.ExitedAt < p.ForkedAt {
			t.Errorf("child %+v: want a child of %d, exited, with its fork-to-attach window", p, run.parent)
		}
		t.Logf("child %d: forked at %s, probes attached %s later, exited at %s", p.PID, p.ForkedAt, p.AttachDelay, p.ExitedAt)
	}
	// The profile labels each sample with its process.
	var b bytes.Buffer
	if err := WriteProfile(&b, res); err != nil {
		t.Fatal(err)
	}
	prof, err := profile.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[string]int64{}
	for _, sm := range prof.Sample {
		for _, l := range sm.Location {
			if len(l.Line) > 0 && l.Line[0].Function.Name == "child_keeper" && len(sm.Label["pid"]) == 1 {
				byPID[sm.Label["pid"][0]] += sm.Value[3] // inuse_space
				break
			}
		}
	}
	for pid, kept := range run.children {
		if got := byPID[strconv.Itoa(pid)]; !within(uint64(got), kept, 0.02) {
			t.Errorf("profile: child_keeper holds %d B with pid label %d; the child kept %d (by pid: %v)", got, pid, kept, byPID)
		}
	}
	if !res.Exited || res.Counts.LostForks != 0 {
		t.Errorf("exited %v, lost forks %d; want the parent exited and no fork lost", res.Exited, res.Counts.LostForks)
	}
}

// Without FollowForks only the parent is recorded: its children's
// allocations appear nowhere.
func TestRecordForksNotFollowed(t *testing.T) {
	res, run := recordForkkeep(t, Options{}, 500)
	if len(res.Processes) != 1 {
		t.Errorf("processes %+v; want the parent alone", res.Processes)
	}
	found := false
	for _, s := range res.Stacks {
		if s.PID != run.parent || hasFrame(s, "child_keeper") {
			t.Errorf("stack of process %d (%v) recorded; want the parent's %d only", s.PID, s.Frames, run.parent)
		}
		if hasFrame(s, "parent_keeper") {
			found = true
			if s.OutstandingBytes != uint64(run.parentKept) {
				t.Errorf("parent_keeper holds %d B; the parent kept %d", s.OutstandingBytes, run.parentKept)
			}
		}
	}
	if !found {
		t.Errorf("no parent_keeper stack in %d stacks", len(res.Stacks))
	}
}

// within says whether got is within frac of want.
func within(got, want uint64, frac float64) bool {
	d := float64(got) - float64(want)
	return d <= frac*float64(want) && d >= -frac*float64(want)
}

// An exec from a thread other than the leader ends the old image: its
// allocations are forgotten, the probes attached anew (the old ones were
// bound to the leader's task, which such an exec ends), and the new
// image's allocations recorded. The new image waits for a byte on stdin,
// written once the probes are attached anew.
func TestRecordExecFromThread(t *testing.T) {
	bin := testprog.Build(t, "threadexec", "-fno-omit-frame-pointer")
	var stdin io.Writer
	o := Options{OnFollow: func(int) {
		if _, err := io.WriteString(stdin, "g"); err != nil {
			t.Errorf("writing the go-ahead: %v", err)
		}
	}}
	res, lines := runHeldWith(t, o, func(w io.Writer) { stdin = w }, bin)
	if len(lines) < 2 || lines[0] != fmt.Sprintf("kept %d", 300*10240) {
		t.Fatalf("threadexec printed %q", lines)
	}
	var second uint64
	for _, s := range res.Stacks {
		if hasFrame(s, "first_keeper") && s.OutstandingBytes > 0 {
			t.Errorf("first_keeper holds %d B after the exec: the exec from a thread was missed", s.OutstandingBytes)
		}
		if hasFrame(s, "second_keeper") {
			second += s.OutstandingBytes
		}
	}
	if second != 300*10240 {
		t.Errorf("second_keeper holds %d B; the new image kept %d", second, 300*10240)
	}
	if len(res.Probes) != 1 {
		t.Errorf("probes %+v; want libc's once", res.Probes)
	}
}
