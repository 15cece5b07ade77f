package collect

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/jmx"
	"github.com/memdiag/memdiag/pmap"
)

// SmapsFile reads a saved /proc/PID/smaps; "-" reads stdin.
func SmapsFile(path string, stdin io.Reader) ([]pmap.Mapping, error) {
	if path == "-" {
		return pmap.ParseSmaps(stdin, "-")
	}
	f, err := input.Open(path)
	if errors.Is(err, input.ErrDirectory) {
		return nil, fmt.Errorf("%w: give a smaps file, a PID or -", err)
	}
	if err != nil {
		return nil, err // it names the file and the cause
	}
	defer f.Close()
	return pmap.ParseSmaps(f, path)
}

// LiveProcess reads the mappings of a live process, unclassified.
func LiveProcess(fsys proc.FS, pid int) (*pmap.Process, error) {
	pfs, err := pmap.NewFS(fsys.Root())
	if err != nil {
		return nil, err
	}
	return pfs.ReadPID(pid)
}

// LiveRequest says which live process's mappings to read, and whether a
// JVM among them may be attached to.
type LiveRequest struct {
	Proc proc.FS // the proc filesystem (the zero value: /proc)
	PID  int
	// Attach lets a JVM's attach socket give its heap range (else
	// hsperfdata alone).
	Attach bool
	Notify func(msg string)
}

// LiveMappings are a live process's mappings with what locates them.
type LiveMappings struct {
	Process *pmap.Process
	// Hints are the process's own and, for a JVM, the regions it names.
	Hints pmap.Hints
	// Notes: the reader's, then the JVM's, then which allocator is mapped.
	Notes []string
}

// ReadLiveMappings reads a live process's smaps, and for a JVM where its
// heap lies: the Java heap is anonymous memory like any other, and only
// the JVM says where it is.
func ReadLiveMappings(ctx context.Context, r LiveRequest) (*LiveMappings, error) {
	// Which runtime and allocator are mapped is read from maps on the other
	// core while smaps is walked: for a large process, for nothing.
	type mapped struct {
		jvm       bool
		allocator allocator.Detection
		err       error
	}
	side := make(chan mapped, 1)
	go func() {
		var m mapped
		m.jvm, _ = jmx.IsJVM(r.Proc, r.PID)
		m.allocator, m.err = allocator.Detect(r.Proc, r.PID)
		side <- m
	}()
	p, err := LiveProcess(r.Proc, r.PID)
	found := <-side
	if err != nil {
		return nil, err
	}
	lm := &LiveMappings{Process: p, Hints: p.Hints, Notes: append([]string{}, p.Notes...)}
	if found.jvm {
		m, err := jmx.ReadPID(ctx, r.PID, jmx.ReadOptions{Proc: r.Proc, NoAttach: !r.Attach, Timeout: 15 * time.Second, Notify: r.Notify})
		if err != nil {
			lm.Notes = append(lm.Notes, "JVM: "+err.Error())
		} else {
			lm.Hints.Regions = append(lm.Hints.Regions, m.Regions()...)
			if m.HeapRange == nil {
				lm.Notes = append(lm.Notes, "JVM: heap range unknown, its mapping is classed anon: "+strings.Join(m.Notes, "; "))
			}
		}
	}
	if found.err == nil && found.allocator.Kind != allocator.Unknown {
		lm.Notes = append(lm.Notes, AllocatorNote(found.allocator))
	}
	return lm, nil
}
