//go:build linux && amd64

package record

import (
	"fmt"
	"sort"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/syscalltrace"
)

// process is the state kept for one process recorded: its own table of
// outstanding allocations (a child's addresses are the parent's), its
// symbols, its uprobes (a uprobe given a pid traps in that process only,
// so a child needs its own) and a pidfd to see it exit.
type process struct {
	pid, ppid int
	dir       string
	comm      string
	pidfd     int
	links     []link.Link

	tab       *table
	sym       *symbolizer
	probes    []Probe
	attached  map[fileKey]bool
	lastMaps  []proc.Mapping
	mapsDirty bool
	// followPending: OnFollow is due once an allocator of the new image
	// is probed (after an exec, libc is mapped by the loader only later).
	followPending bool
	threads       map[int]bool // tasks seen, other than the leader

	forkTs, attachTs, exitTs uint64 // CLOCK_MONOTONIC ns
	exited                   bool
}

func (p *process) detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}

func (p *process) close() {
	p.detach()
	if p.pidfd > 0 {
		unix.Close(p.pidfd)
		p.pidfd = 0
	}
}

// follow starts recording process pid: its pidfd, its state, its tgid in
// the kernel's set of targets. The uprobes come with its maps.
func (r *recorder) follow(pid, ppid int) (*process, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	p := &process{pid: pid, ppid: ppid, dir: r.o.Proc.Dir(pid), pidfd: fd,
		tab: newTable(r.o.MaxOutstanding, r.o.SampleBytes), sym: &symbolizer{}, attached: map[fileKey]bool{}, threads: map[int]bool{}}
	if err := r.objs.Targets.Put(uint32(pid), uint8(1)); err != nil {
		p.close()
		return nil, fmt.Errorf("process %d: adding it to the kernel's targets: %w", pid, err)
	}
	r.procs[pid] = p
	return p, nil
}

// forked follows a child of a recorded process, at once: until its probes
// are attached its allocator calls are not seen (the kernel copied the
// parent's breakpoints into it, but a uprobe given a pid fires in that
// process only).
func (r *recorder) forked(parent, child int, ts uint64) {
	pp := r.procs[parent]
	if pp == nil || r.procs[child] != nil {
		return
	}
	p, err := r.follow(child, parent)
	if err != nil {
		// Gone already (a reaped child): nothing of it to record.
		_ = r.objs.Targets.Delete(uint32(child))
		return
	}
	p.forkTs, p.comm = ts, pp.comm
	// The child's address space is a copy of the parent's, made before the
	// recording saw it: its mappings start as pre-existing, as a fork in a
	// trace does.
	r.apply(pp, &syscalltrace.Event{Call: syscalltrace.CallClone, Name: "fork", TID: parent, Ret: uint64(child), FlagsText: "SIGCHLD"}, ts, 0, -1)
	_ = r.refreshMaps(p) // it may be gone: its allocations made so far stay
	p.attachTs = monotonic()
	r.execSeen = true // its exec, if it comes soon, is read at once
	if r.o.OnFollow != nil {
		r.o.OnFollow(child)
	}
}

// joinThread puts a task the recording has not seen into its process's
// address space in the replay (threads created before the recording, or
// without a probe on clone).
func (r *recorder) joinThread(p *process, tid int) {
	if tid == p.pid || p.threads[tid] {
		return
	}
	p.threads[tid] = true
	r.replay.Apply(&syscalltrace.Event{Call: syscalltrace.CallClone, Name: "clone", TID: p.pid, Ret: uint64(tid),
		Flags: syscalltrace.FlagCloneVM, FlagsText: "CLONE_VM|CLONE_THREAD", PID: p.pid, Comm: p.comm})
}

// reapExited notes the processes that have exited (their pidfds are
// readable): a child's uprobes are closed and its kernel state dropped,
// its outstanding allocations kept as they stood at its exit. It says
// whether the recording is over: the process recorded exited and, when
// following forks, every child followed too.
func (r *recorder) reapExited() bool {
	live := 0
	for _, p := range r.procs {
		if p.exited {
			continue
		}
		fds := []unix.PollFd{{Fd: int32(p.pidfd), Events: unix.POLLIN}}
		if n, err := unix.Poll(fds, 0); err != nil || n == 0 {
			live++
			continue
		}
		p.exited, p.exitTs = true, monotonic()
		if p == r.root {
			continue // detached with the rest at the end, as without forks
		}
		r.closeAside(p)
		_ = r.objs.Targets.Delete(uint32(p.pid))
		for a := range p.tab.live {
			r.untrack(p, a)
		}
		r.apply(p, &syscalltrace.Event{Call: syscalltrace.CallExit, Name: "exit", TID: p.pid}, p.exitTs, 0, -1)
	}
	return r.root.exited && (live == 0 || !r.o.FollowForks)
}

// closeAside closes p's uprobes in the background: closing one waits for
// the kernel (a grace period each, tens of ms under load), and reading the
// ring buffer must go on meanwhile.
func (r *recorder) closeAside(p *process) {
	links := p.links
	p.links = nil
	r.closing.Add(1)
	go func() {
		defer r.closing.Done()
		for _, l := range links {
			l.Close()
		}
	}()
}

// reattach probes p anew after an exec from a thread other than its
// leader: a uprobe given a pid is bound to the task of that id, and such
// an exec ends that task (the thread that called exec takes its id), so
// the old probes no longer fire. Until the new ones are attached the new
// image's allocator calls are not seen.
func (r *recorder) reattach(p *process) {
	r.closeAside(p)
	p.probes, p.attached = nil, map[fileKey]bool{}
	p.followPending = true
	_ = r.refreshMaps(p)
}

// ordered is the processes, the one recorded first, then by pid.
func (r *recorder) ordered() []*process {
	out := make([]*process, 0, len(r.procs))
	for _, p := range r.procs {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == r.root) != (out[j] == r.root) {
			return out[i] == r.root
		}
		return out[i].pid < out[j].pid
	})
	return out
}
