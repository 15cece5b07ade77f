package collect

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/memdiag/memdiag/internal/atomicfile"
	"github.com/memdiag/memdiag/record"
	"github.com/memdiag/memdiag/report"
)

// RecordingRequest is what `memdiag record` records: a live process
// (Options.PID) or a command started for the recording.
type RecordingRequest struct {
	Options record.Options
	// Command, when set, is started held, probed, then let run; the
	// recording ends when it exits.
	Command []string
	// Stdin and Output are the command's: its output is kept apart from
	// memdiag's own, which stays parseable.
	Stdin  io.Reader
	Output io.Writer
	// PprofPath, when set, gets the allocations as a gzipped pprof profile.
	PprofPath string
	// StackLimit is how many stacks a table lists.
	StackLimit int
}

// Recording records r's process and returns the view that renders it: the
// outstanding allocations, the findings, and notes on how it ended.
func Recording(ctx context.Context, r *RecordingRequest) (*report.RecordView, error) {
	var res *record.Result
	var notes []string
	var err error
	if len(r.Command) == 0 {
		res, err = record.Record(ctx, r.Options)
	} else {
		res, notes, err = recordCommand(ctx, r)
	}
	if err != nil {
		return nil, err
	}
	if res.Exited {
		notes = append(notes, fmt.Sprintf("process %d exited during the recording: what it had not freed is shown as outstanding", res.PID))
	}
	if r.PprofPath != "" {
		if err := atomicfile.Write(r.PprofPath, 0o644, func(w io.Writer) error { return record.WriteProfile(w, res) }); err != nil {
			return nil, fmt.Errorf("writing %s: %w", r.PprofPath, err)
		}
		notes = append(notes, fmt.Sprintf("profile written: go tool pprof -sample_index=inuse_space -top %s", r.PprofPath))
	}
	return &report.RecordView{Result: res, Findings: record.Findings(res), Notes: notes, StackLimit: r.StackLimit}, nil
}

// recordCommand starts the command held, records it from its first
// instruction on, and stops it if the recording ends first.
func recordCommand(ctx context.Context, r *RecordingRequest) (*record.Result, []string, error) {
	path, err := exec.LookPath(r.Command[0])
	if err != nil {
		return nil, nil, fmt.Errorf("the command to record: %w", err)
	}
	child := exec.Command(path, r.Command[1:]...)
	child.Stdin, child.Stdout, child.Stderr = r.Stdin, r.Output, r.Output
	held, err := record.StartHeld(child)
	if err != nil {
		return nil, nil, err
	}
	var waitErr error
	done := make(chan struct{})
	released := false
	defer func() {
		if !released {
			held.Close() // the held shell exits without running the command
			_ = child.Wait()
			return
		}
		stopCommand(child, done)
	}()
	o := r.Options
	o.PID = child.Process.Pid
	o.Ready = func() error {
		if err := held.Release(); err != nil {
			return err
		}
		released = true
		go func() { waitErr = child.Wait(); close(done) }()
		return nil
	}
	res, err := record.Record(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	if res.Exited {
		<-done
		if waitErr != nil {
			notes = append(notes, fmt.Sprintf("the command ended: %v", waitErr))
		}
	}
	return res, notes, nil
}

// stopCommand ends a command the recording stopped before it exited (a
// signal, --duration): it is ours, started for the recording.
func stopCommand(child *exec.Cmd, done <-chan struct{}) {
	select {
	case <-done:
		return
	default:
	}
	_ = child.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = child.Process.Kill()
		<-done
	}
}
