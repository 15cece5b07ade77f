//go:build linux && amd64

package record

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/internal/targetfs"
	"github.com/memdiag/memdiag/syscalltrace"
)

// Event kinds and counter slots, as the BPF program numbers them.
const (
	evAlloc = iota + 1
	evFree
	evMmap
	evMunmap
	evMremap
	evBrk
	evExec
	evFork
)

const (
	cLostAlloc = iota
	cLostFree
	cLostMap
	cTrackFull
	cPendingFull
	cSkippedSmall
	cSkippedSample
	cCalls
	cSyscalls
	cLostFork
	nCounters
)

const (
	maxStackDepth = 64 // MAX_STACK_DEPTH of the BPF program
	eventSize     = 80 // sizeof(struct event)
	intervals     = 1024
)

// Record attaches the probes to process o.PID, records until ctx is done,
// o.Duration has passed or the process exits, detaches them and returns
// what is outstanding. Every exit path detaches: the probes are file
// descriptors of this process, closed on return (and by the kernel should
// memdiag itself be killed).
func Record(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	if o.PID <= 0 {
		return nil, errors.New("record: no process id")
	}
	if err := preflight(); err != nil {
		return nil, err
	}
	r := &recorder{o: o, replay: syscalltrace.NewReplay(true), mapStacks: map[int]int32{}, procs: map[int]*process{}}
	defer r.close()
	if err := r.load(); err != nil {
		return nil, err
	}
	root, err := r.follow(o.PID, 0)
	if err != nil {
		return nil, err
	}
	r.root = root
	if err := r.refreshMaps(root); err != nil {
		return nil, err
	}
	if len(root.probes) == 0 || !root.anyAttached() {
		return nil, fmt.Errorf("process %d: %w (%s)", o.PID, ErrNoAllocator, root.probeErrors())
	}
	progs := []*ebpf.Program{r.objs.SchedProcessExec}
	if o.FollowForks {
		progs = append(progs, r.objs.SchedProcessFork)
	}
	if !o.NoMappings {
		progs = append(progs, r.objs.SysEnter, r.objs.SysExit)
	}
	for _, p := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			return nil, fmt.Errorf("attaching to the kernel's tracepoints (%s): %w", p.String(), classify(err))
		}
		r.links = append(r.links, l)
	}
	rd, err := ringbuf.NewReader(r.objs.Events)
	if err != nil {
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	r.rd = rd
	r.t0 = monotonic()
	r.started = time.Now()
	if o.Ready != nil {
		if err := o.Ready(); err != nil {
			return nil, err
		}
	}
	if err := r.loop(ctx); err != nil {
		return nil, err
	}
	r.ended = time.Since(r.started)
	r.endMono = monotonic()
	r.refreshDirty() // libraries loaded since the last look
	r.detach()
	r.drain()
	r.refreshDirty()
	return r.snapshot(true), nil
}

// refreshDirty reads the maps of every live process that mapped a library
// since its maps were last read.
func (r *recorder) refreshDirty() {
	for _, p := range r.procs {
		if p.mapsDirty && !p.exited {
			_ = r.refreshMaps(p)
		}
	}
}

type fileKey struct {
	dev, ino uint64
}

type recorder struct {
	o     Options
	objs  memrecObjects
	links []link.Link // the kernel tracepoints
	rd    *ringbuf.Reader

	root    *process
	procs   map[int]*process // by pid: the root and the children followed
	closing sync.WaitGroup   // exited children's uprobes being closed

	// One replay for every process: a fork starts the child's address
	// space (Mapping.Space is its pid), as trace replays a forking strace.
	replay    *syscalltrace.Replay
	mapStacks map[int]int32 // a mapping event's number → its stack id
	seq       int
	stacks    uint64
	stackFail uint64
	execSeen  bool // an exec (or a fork) since the maps were last read

	t0      uint64
	started time.Time
	ended   time.Duration
	endMono uint64 // when the recording ended: ages are taken then
}

func (r *recorder) close() {
	r.detach()
	r.closing.Wait()
	if r.rd != nil {
		r.rd.Close()
	}
	r.objs.Close()
	for _, p := range r.procs {
		p.close()
	}
}

func (r *recorder) detach() {
	for _, l := range r.links {
		l.Close()
	}
	r.links = nil
	for _, p := range r.procs {
		p.detach()
	}
}

// preflight names what is missing before anything is loaded.
func preflight() error {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return fmt.Errorf("%w: /sys/kernel/btf/vmlinux: %w (the kernel must be built with CONFIG_DEBUG_INFO_BTF)", ErrNoBTF, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil {
		has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
		const capSysAdmin, capPerfmon, capBPF = 21, 38, 39
		if !has(capSysAdmin) && (!has(capPerfmon) || !has(capBPF)) {
			return fmt.Errorf("%w: loading BPF programs and uprobes needs root, or CAP_BPF and CAP_PERFMON (with CAP_SYS_PTRACE for another user's process)", ErrNotPermitted)
		}
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("raising the locked-memory limit for BPF maps: %w", err)
	}
	return nil
}

// classify adds what the kernel's refusal usually means.
func classify(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		why := []string{"root, or CAP_BPF and CAP_PERFMON, is needed"}
		if b, rerr := os.ReadFile("/sys/kernel/security/lockdown"); rerr == nil && !bytes.Contains(b, []byte("[none]")) {
			why = append(why, "the kernel is locked down ("+strings.TrimSpace(string(b))+")")
		}
		if b, rerr := os.ReadFile("/proc/sys/kernel/unprivileged_bpf_disabled"); rerr == nil && strings.TrimSpace(string(b)) != "0" && os.Geteuid() != 0 {
			why = append(why, "unprivileged BPF is disabled")
		}
		if b, rerr := os.ReadFile("/proc/self/status"); rerr == nil && bytes.Contains(b, []byte("Seccomp:\t2")) {
			why = append(why, "a seccomp filter may refuse bpf(2) or perf_event_open(2) (a container's default profile does)")
		}
		return fmt.Errorf("%w: %w (%s)", ErrNotPermitted, err, strings.Join(why, "; "))
	}
	return err
}

func (r *recorder) load() error {
	spec, err := loadMemrec()
	if err != nil {
		return fmt.Errorf("reading the BPF program: %w", err)
	}
	set := func(name string, v any) error {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("the BPF program has no variable %s", name)
		}
		return vs.Set(v)
	}
	ring := uint32(roundPow2(uint64(r.o.RingBytes)))
	follow := uint8(0)
	if r.o.FollowForks {
		follow = 1
	}
	for name, v := range map[string]any{"follow_forks": follow, "min_size": r.o.MinSize, "sample_bytes": r.o.SampleBytes, "wake_bytes": uint64(ring / 8)} {
		if err := set(name, v); err != nil {
			return err
		}
	}
	spec.Maps["events"].MaxEntries = ring
	// The kernel tracks what the table holds plus what the ring buffer may
	// hold in flight, so that it is not full before the table drops its
	// oldest.
	spec.Maps["tracked"].MaxEntries = uint32(r.o.MaxOutstanding + int(ring)/eventSize)
	spec.Maps["stacks"].MaxEntries = uint32(r.o.StackSlots)
	if err := spec.LoadAndAssign(&r.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("the kernel's verifier refused the BPF program: %w", err)
		}
		return fmt.Errorf("loading the BPF program: %w", classify(err))
	}
	if r.o.SampleBytes > 0 {
		// Exponential intervals of mean SampleBytes at the quantiles
		// (i+½)/n: the countdown the program draws its next sample from.
		for i := uint32(0); i < intervals; i++ {
			u := (float64(i) + 0.5) / intervals
			v := uint64(-math.Log(u) * float64(r.o.SampleBytes))
			if err := r.objs.Intervals.Put(i, max(v, 1)); err != nil {
				return fmt.Errorf("filling the sampling intervals: %w", err)
			}
		}
		// The first sample comes after a drawn interval, not at once.
		n := ebpf.MustPossibleCPU()
		left := make([]int64, n)
		for i := range left {
			left[i] = int64(r.o.SampleBytes)
		}
		if err := r.objs.SampleLeft.Put(uint32(0), left); err != nil {
			return fmt.Errorf("starting the sampling countdown: %w", err)
		}
	}
	return nil
}

func roundPow2(n uint64) uint64 {
	p := uint64(os.Getpagesize())
	for p < n {
		p <<= 1
	}
	return p
}

func (pr *process) anyAttached() bool {
	for _, p := range pr.probes {
		if len(p.Functions) > 0 {
			return true
		}
	}
	return false
}

func (pr *process) probeErrors() string {
	var s []string
	for _, p := range pr.probes {
		for _, e := range p.Errors {
			s = append(s, p.Path+": "+e)
		}
	}
	if len(s) == 0 {
		return "no libc, jemalloc or tcmalloc mapped, and no malloc in the executable"
	}
	return strings.Join(s, "; ")
}

// refreshMaps reads the process's maps: executable mappings for
// symbolisation, and allocators not yet probed (a library loaded since,
// a new image after exec).
func (r *recorder) refreshMaps(p *process) error {
	p.mapsDirty = false
	name := filepath.Join(p.dir, "maps")
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("process %d: %w", p.pid, err)
	}
	maps, err := proc.ParseMaps(f, name)
	f.Close()
	if err != nil {
		return err
	}
	if len(maps) == 0 {
		return nil // a zombie: nothing left to read
	}
	p.lastMaps = maps
	if comm, err := os.ReadFile(filepath.Join(p.dir, "comm")); err == nil {
		p.comm = strings.TrimSpace(string(comm))
	}
	exe, _ := os.Readlink(filepath.Join(p.dir, "exe"))
	tabs := map[fileKey]*symtab{}
	for _, m := range maps {
		if m.Inode == 0 || !m.Executable() {
			continue
		}
		key := fileKey{uint64(unix.Mkdev(m.DevMajor, m.DevMinor)), m.Inode}
		tab, seen := tabs[key]
		var file *os.File
		if !seen {
			file, tab = r.readFile(p, m)
			tabs[key] = tab
		}
		p.sym.add(execRange{start: m.Start, end: m.End, offset: m.Offset, path: m.Path, tab: tab})
		if file == nil {
			continue
		}
		kind := libraryKind(m.Path)
		if kind == "" && m.Path == exe && tab != nil {
			if _, ok := tab.fileOffset("malloc"); ok {
				kind = "executable" // a statically linked allocator
			}
		}
		if kind != "" && !p.attached[key] {
			p.attached[key] = true
			r.attach(p, file, m.Path, tab)
		}
		file.Close()
	}
	if p.followPending && len(p.probes) > 0 {
		p.followPending = false
		if r.o.OnFollow != nil {
			r.o.OnFollow(p.pid)
		}
	}
	return nil
}

// readFile opens the mapped file safely (targetfs.OpenMapped: the mapped
// inode, never a path swapped in) and reads its symbols.
func (r *recorder) readFile(p *process, m proc.Mapping) (*os.File, *symtab) {
	f, err := targetfs.OpenMapped(p.dir, targetfs.MappedFile{Start: m.Start, End: m.End, Path: m.Path, DevMajor: m.DevMajor, DevMinor: m.DevMinor, Inode: m.Inode})
	if err != nil {
		return nil, nil
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil
	}
	tab, err := readSymtab(f, fi.Size(), r.o.DebugDir)
	if err != nil {
		f.Close()
		return nil, nil
	}
	return f, tab
}

// attach puts the uprobes on the allocator functions of the open file.
// The kernel resolves the path to the inode at attach time, and the path
// given is that of the descriptor already checked to be the mapped file.
func (r *recorder) attach(pp *process, f *os.File, path string, tab *symtab) {
	p := Probe{Path: path}
	defer func() { pp.probes = append(pp.probes, p) }()
	ex, err := link.OpenExecutable("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		p.Errors = append(p.Errors, err.Error())
		return
	}
	o := r.objs
	for _, pr := range []struct {
		fn          allocFn
		enter, exit *ebpf.Program
	}{
		{fnMalloc, o.MallocEnter, o.MallocLeave}, {fnCalloc, o.CallocEnter, o.CallocLeave},
		{fnRealloc, o.ReallocEnter, o.ReallocLeave}, {fnReallocarray, o.ReallocarrayEnter, o.ReallocarrayLeave},
		{fnPosixMemalign, o.PosixMemalignEnter, o.PosixMemalignLeave}, {fnAlignedAlloc, o.AlignedAllocEnter, o.AlignedAllocLeave},
		{fnMemalign, o.MemalignEnter, o.MemalignLeave}, {fnValloc, o.VallocEnter, o.VallocLeave},
		{fnPvalloc, o.PvallocEnter, o.PvallocLeave}, {fnFree, o.FreeEnter, nil},
	} {
		name := pr.fn.String()
		off, ok := tab.fileOffset(name)
		if !ok {
			p.Missing = append(p.Missing, name)
			continue
		}
		opts := &link.UprobeOptions{Address: off, PID: pp.pid}
		// The return probe first: an entry seen without its return would
		// leave a call in flight.
		if pr.exit != nil {
			l, err := ex.Uretprobe(name, pr.exit, opts)
			if err != nil {
				p.Missing = append(p.Missing, name)
				p.Errors = append(p.Errors, fmt.Sprintf("%s: %v", name, classify(err)))
				continue
			}
			pp.links = append(pp.links, l)
		}
		l, err := ex.Uprobe(name, pr.enter, opts)
		if err != nil {
			p.Missing = append(p.Missing, name)
			p.Errors = append(p.Errors, fmt.Sprintf("%s: %v", name, classify(err)))
			continue
		}
		pp.links = append(pp.links, l)
		p.Functions = append(p.Functions, name)
	}
}

// loop reads events until the end.
func (r *recorder) loop(ctx context.Context) error {
	var deadline, next time.Time
	if r.o.Duration > 0 {
		deadline = r.started.Add(r.o.Duration)
	}
	if r.o.Interval > 0 {
		next = r.started.Add(r.o.Interval)
	}
	var lastMaps time.Time
	var rec ringbuf.Record
	for {
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			return nil
		case !deadline.IsZero() && !now.Before(deadline):
			return nil
		case r.reapExited():
			return nil
		}
		// A new image is read at once (a short-lived command may be gone
		// soon), libraries at most every 10 ms.
		if r.execSeen || now.Sub(lastMaps) > 10*time.Millisecond {
			r.refreshDirty() // a process may be exiting: its last maps stay
			lastMaps, r.execSeen = now, false
		}
		if !next.IsZero() && !now.Before(next) {
			r.o.OnInterval(r.snapshot(false))
			next = next.Add(r.o.Interval)
		}
		r.rd.SetDeadline(now.Add(25 * time.Millisecond))
		for {
			if err := r.rd.ReadInto(&rec); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return fmt.Errorf("reading the ring buffer: %w", err)
			}
			r.handle(rec.RawSample)
			if r.execSeen || time.Since(now) > 100*time.Millisecond {
				break // a new image to read, or the clock and the processes to look at
			}
		}
	}
}

// drain reads what the ring buffer still holds once the probes are gone.
func (r *recorder) drain() {
	var rec ringbuf.Record
	r.rd.SetDeadline(time.Now())
	for r.rd.ReadInto(&rec) == nil {
		r.handle(rec.RawSample)
	}
}

func (r *recorder) handle(b []byte) {
	if len(b) < eventSize {
		return
	}
	le := binary.LittleEndian
	ts, enter, addr, size := le.Uint64(b[0:]), le.Uint64(b[8:]), le.Uint64(b[16:]), le.Uint64(b[24:])
	a1, a2, a3, a4 := le.Uint64(b[32:]), le.Uint64(b[40:]), le.Uint64(b[48:]), le.Uint64(b[56:])
	tid, stack := int(le.Uint32(b[64:])), int32(le.Uint32(b[68:]))
	kind, fn, tgid := b[72], allocFn(b[73]), int(le.Uint32(b[76:]))
	if kind == evFork {
		r.forked(int(addr), tgid, ts)
		return
	}
	p := r.procs[tgid]
	if p == nil {
		return // a process no longer followed
	}
	r.joinThread(p, tid)
	switch kind {
	case evAlloc:
		if stack >= 0 {
			r.stacks++
		} else {
			r.stackFail++
		}
		for _, a := range p.tab.add(addr, size, ts, stack, fn) {
			r.untrack(p, a) // its free need not be sent now
		}
	case evFree:
		p.tab.free(addr)
	case evExec:
		for _, a := range p.tab.reset() {
			r.untrack(p, a)
		}
		if comm := b[32:48]; comm[0] != 0 {
			p.comm = string(bytes.TrimRight(comm, "\x00"))
		}
		p.sym = &symbolizer{} // another program's files
		p.mapsDirty, r.execSeen = true, true
		if int(a3) != p.pid {
			r.reattach(p)
		}
		r.apply(p, &syscalltrace.Event{Call: syscalltrace.CallExec, Name: "execve", TID: tid}, ts, enter, -1)
	case evMmap:
		flags, text := syscalltrace.MmapFlags(a2)
		fd := int64(int32(a3))
		e := &syscalltrace.Event{Call: syscalltrace.CallMmap, Name: "mmap", TID: tid, Len: size, Offset: a4,
			FD: fd, Prot: syscalltrace.ProtText(a1), Flags: flags, FlagsText: text, Ret: addr}
		if flags&syscalltrace.FlagAnonymous != 0 {
			e.FD = -1
		} else if a1&unix.PROT_EXEC != 0 {
			p.mapsDirty = true // a library: its symbols are wanted
		}
		r.apply(p, e, ts, enter, stack)
	case evMunmap:
		r.apply(p, &syscalltrace.Event{Call: syscalltrace.CallMunmap, Name: "munmap", TID: tid, Addr: addr, Len: size}, ts, enter, -1)
	case evMremap:
		flags, text := syscalltrace.MremapFlags(a2)
		r.apply(p, &syscalltrace.Event{Call: syscalltrace.CallMremap, Name: "mremap", TID: tid, Addr: a1, Len: size, NewLen: a3,
			NewAddr: a4, Flags: flags, FlagsText: text, Ret: addr}, ts, enter, stack)
	case evBrk:
		r.apply(p, &syscalltrace.Event{Call: syscalltrace.CallBrk, Name: "brk", TID: tid, Addr: a1, Ret: addr}, ts, enter, -1)
	}
}

// untrack forgets a recorded pointer in the kernel too.
func (r *recorder) untrack(p *process, addr uint64) {
	_ = r.objs.Tracked.Delete(memrecTrackKey{Tgid: uint32(p.pid), Ptr: addr})
}

func (r *recorder) apply(p *process, e *syscalltrace.Event, ts, enter uint64, stack int32) {
	r.seq++
	e.Line = r.seq
	e.PID = p.pid
	e.Comm = p.comm
	e.Time, e.HasTime = r.seconds(ts), true
	e.DoneKey = float64(ts)
	e.EnterKey = float64(enter)
	if enter == 0 {
		e.EnterKey = e.DoneKey
	}
	if stack >= 0 {
		r.mapStacks[r.seq] = stack
	}
	r.replay.Apply(e)
}

// seconds is a monotonic kernel time as seconds since the recording began.
func (r *recorder) seconds(ts uint64) float64 {
	if ts < r.t0 {
		return 0
	}
	return float64(ts-r.t0) / 1e9
}

func monotonic() uint64 {
	var t unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &t)
	return uint64(t.Sec)*1e9 + uint64(t.Nsec)
}

// counters sums the BPF program's per-CPU counters.
func (r *recorder) counters() [nCounters]uint64 {
	var out [nCounters]uint64
	for i := range out {
		var per []uint64
		if err := r.objs.Counters.Lookup(uint32(i), &per); err == nil {
			for _, v := range per {
				out[i] += v
			}
		}
	}
	return out
}

// stackFrames reads a stack from the kernel's table and names its frames
// with the symbols of the process that took it.
func (r *recorder) stackFrames(p *process, id int32, cache map[stackKey][]syscalltrace.Frame) []syscalltrace.Frame {
	k := stackKey{p.pid, id}
	if f, ok := cache[k]; ok {
		return f
	}
	var raw [maxStackDepth]uint64
	if err := r.objs.Stacks.Lookup(uint32(id), &raw); err != nil {
		cache[k] = nil
		return nil
	}
	n := 0
	for n < len(raw) && raw[n] != 0 {
		n++
	}
	f := p.sym.frames(raw[:n])
	cache[k] = f
	return f
}

type stackKey struct {
	pid int
	id  int32
}

// snapshot builds the result as things stand.
func (r *recorder) snapshot(final bool) *Result {
	now := monotonic()
	if final && r.endMono != 0 {
		now = r.endMono
	}
	c := r.counters()
	res := &Result{PID: r.o.PID, Comm: r.root.comm, Final: final, Exited: r.root.exited, MinSize: r.o.MinSize, SampleBytes: r.o.SampleBytes,
		FollowForks: r.o.FollowForks, Probes: r.root.probes, Mappings: r.replay, Duration: time.Since(r.started)}
	if final {
		res.Duration = r.ended
	}
	res.Counts = Counts{Calls: c[cCalls], SkippedSmall: c[cSkippedSmall], SkippedSample: c[cSkippedSample], Syscalls: c[cSyscalls],
		LostAllocs: c[cLostAlloc], LostFrees: c[cLostFree], LostMappings: c[cLostMap], LostForks: c[cLostFork], TrackFull: c[cTrackFull], PendingFull: c[cPendingFull],
		Stacks: r.stacks, StacksFailed: r.stackFail}
	cache := map[stackKey][]syscalltrace.Frame{}
	var allocBytes float64
	for _, p := range r.ordered() {
		t := p.tab
		res.Counts.Allocs += t.allocs
		res.Counts.Frees += t.frees
		res.Counts.Unmatched += t.unmatched
		res.Counts.Summarised += t.summarised
		res.Counts.SummarisedBytes += t.summarisedBytes
		allocBytes += t.allocBytes
		pr := Process{PID: p.pid, PPID: p.ppid, Comm: p.comm, Exited: p.exited, AllocBytes: round(t.allocBytes)}
		if p.forkTs != 0 {
			pr.ForkedAt = time.Duration(r.since(p.forkTs))
			pr.AttachDelay = time.Duration(p.attachTs - min(p.forkTs, p.attachTs))
		}
		if p.exited {
			pr.ExitedAt = time.Duration(r.since(p.exitTs))
		}
		stacks := t.stacks(now)
		for i := range stacks {
			s := &stacks[i]
			s.PID = p.pid
			pr.OutstandingBytes += s.OutstandingBytes
			pr.OutstandingCount += s.OutstandingCount
			if s.ID < 0 {
				s.Unwound = stackError(s.ID)
				continue
			}
			s.Frames = r.stackFrames(p, s.ID, cache)
			switch {
			case len(s.Frames) == 0:
				s.Unwound = "the stack was not found in the kernel's table"
			case len(s.Frames) == 1:
				s.Unwound = "one frame: its caller keeps no frame pointer"
				res.Counts.StacksShort++
			case len(s.Frames) == maxStackDepth:
				s.Unwound = fmt.Sprintf("truncated at %d frames", maxStackDepth)
				res.Counts.StacksTruncated++
			}
		}
		res.OutstandingBytes += pr.OutstandingBytes
		res.OutstandingCount += pr.OutstandingCount
		res.Stacks = append(res.Stacks, stacks...)
		res.Processes = append(res.Processes, pr)
	}
	sortStacks(res.Stacks)
	res.AllocBytes = round(allocBytes)
	res.Outstanding = r.replay.Outstanding()
	for _, m := range res.Outstanding {
		p := r.procs[m.Space]
		if p == nil {
			p = r.root
		}
		if id, ok := r.mapStacks[m.Line]; ok && m.Frames == nil {
			m.Frames = r.stackFrames(p, id, cache)
		}
		if !m.Anonymous && m.Path == "" {
			for _, pm := range p.lastMaps {
				if pm.Start == m.Start {
					m.Path = pm.Path
					break
				}
			}
		}
	}
	return res
}

// since is a monotonic kernel time as a duration since the recording began.
func (r *recorder) since(ts uint64) uint64 {
	if ts < r.t0 {
		return 0
	}
	return ts - r.t0
}
