//go:build linux && amd64

package record

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memdiag/memdiag/internal/testprog"
)

// needBPF skips, saying why, where recording cannot run.
func needBPF(t *testing.T, err error) {
	t.Helper()
	if errors.Is(err, ErrNotPermitted) || errors.Is(err, ErrNoBTF) || errors.Is(err, ErrUnsupported) {
		t.Skipf("the kernel refuses recording here: %v", err)
	}
}

// runHeld records bin started held, until it prints "done".
func runHeld(t *testing.T, o Options, bin string, args ...string) (*Result, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("memdiag record needs root (CAP_BPF, CAP_PERFMON); not root")
	}
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	h, err := StartHeld(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); stdin.Close(); _ = cmd.Wait() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var lines []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if sc.Text() == "done" {
				cancel()
				return
			}
		}
	}()
	o.PID = cmd.Process.Pid
	o.Ready = h.Release
	// The program ends the recording; the bound only keeps a broken test
	// from hanging.
	o.Duration = 5 * time.Minute
	res, err := Record(ctx, o)
	needBPF(t, err)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	return res, lines
}

func TestRecordKeeperAndChurner(t *testing.T) {
	bin := testprog.Build(t, "keepchurn", "-fno-omit-frame-pointer")
	const keep, churn = 3000, 2000000
	res, lines := runHeld(t, Options{}, bin, "3000", "2000000")
	truth := uint64(keep * 10240)
	t.Logf("%s", strings.Join(lines, "; "))
	t.Logf("counts %+v", res.Counts)
	for i, s := range res.Stacks {
		if i == 5 {
			break
		}
		t.Logf("stack %d: out %d B / %d, alloc %d B / %d, %s: %v", s.ID, s.OutstandingBytes, s.OutstandingCount, s.AllocBytes, s.AllocCount, s.Unwound, s.Frames)
	}
	if len(res.Stacks) == 0 {
		t.Fatal("no stacks recorded")
	}
	top := res.Stacks[0]
	if len(top.Frames) == 0 || top.Frames[0].Func != "keeper" {
		t.Fatalf("leading stack %v (%s), want keeper's", top.Frames, top.Unwound)
	}
	if d := float64(top.OutstandingBytes) - float64(truth); d > 0.02*float64(truth) || d < -0.02*float64(truth) {
		t.Errorf("keeper holds %d B, truth %d B (more than 2%% off)", top.OutstandingBytes, truth)
	}
	if lost := res.Counts.Lost(); lost == 0 {
		for _, s := range res.Stacks {
			if len(s.Frames) > 0 && s.Frames[0].Func == "churner" {
				if s.OutstandingBytes > 64*16 {
					t.Errorf("churner holds %d B, want almost nothing", s.OutstandingBytes)
				}
				if s.AllocCount < churn/2 {
					t.Errorf("churner's allocations: %d recorded, want about %d", s.AllocCount, churn)
				}
			}
		}
	}
	_ = filepath.Base
}
