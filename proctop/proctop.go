// Package proctop answers "which process, and why" for a whole host, in
// tiers, so that 500 processes take a fraction of a second and no process
// is stalled by a page-table walk it did not need:
//
//  1. every process from /proc/PID/status: RSS by kind (anon, file, shmem),
//     swap, threads — one small read each;
//  2. processes under an RSS cap from smaps_rollup: PSS by kind, SwapPss,
//     USS — one walk of the page tables, which a very large process makes
//     slow (a 200 GB process took 4.4 s and stalled), hence the cap;
//  3. the top few from /proc/PID/maps, without a page walk: glibc arena
//     heaps from their 64 MiB geometry, the JVM, the allocator.
//
// Processes that exit mid-read are counted, never an error.
package proctop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/memdiag/memdiag/allocator"
	"github.com/memdiag/memdiag/glibcheap"
	"github.com/memdiag/memdiag/internal/elfinfo"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/internal/input"
	"github.com/memdiag/memdiag/internal/proc"
	"github.com/memdiag/memdiag/pmap"
)

// Process is one process, as far as the tiers read it.
type Process struct {
	PID     int
	PPID    int
	UID     int
	Command string
	Threads int
	// From status (tier 1), bytes.
	RSSBytes, AnonBytes, FileBytes, ShmemBytes, SwapBytes uint64
	// Rollup is tier 2; nil when skipped (Skipped says why).
	Rollup  *Rollup
	Skipped string
	// Diagnosis is tier 3, for the top processes only; nil when skipped
	// (DiagnosisSkipped says why: maps past the cap, the budget spent).
	Diagnosis        *Diagnosis
	DiagnosisSkipped string
	tooManyMappings  bool // its maps were past Options.MaxMappings
}

// ActualBytes is RSS + swap: what the process costs, wherever it is.
func (p *Process) ActualBytes() uint64 { return p.RSSBytes + p.SwapBytes }

// Rollup is what smaps_rollup says, bytes.
type Rollup struct {
	PSS, PSSAnon, PSSFile, PSSShmem, SwapPSS uint64
	// USS is memory only this process maps: Private_Clean + Private_Dirty.
	USS uint64
}

// Diagnosis is what /proc/PID/maps tells without touching page tables.
type Diagnosis struct {
	// ArenaHeaps counts glibc's 64 MiB arena heaps (reserved, from their
	// geometry: an arena may own several); ArenaCommittedBytes is what of
	// them was made read-write (grown), resident or not.
	ArenaHeaps          int    `json:"arena_heaps"`
	ArenaCommittedBytes uint64 `json:"arena_committed_bytes"`
	// Go is a Go program: its heap arenas have glibc's geometry, so none
	// are counted.
	Go  bool `json:"go"`
	JVM bool `json:"jvm"`
	// Allocator is "jemalloc" or "tcmalloc" when one is mapped, "glibc"
	// when libc.so.6 is, "" otherwise.
	Allocator string `json:"allocator"`
	// MallocFreeBytes is what glibc's arenas hold free (mallinfo2's
	// fordblks), read from the process's memory without stopping it
	// (glibcheap, no pause: the figure may be torn by a concurrent malloc);
	// nil when it could not be read. MallocArenaBytes is the arenas'
	// memory (mallinfo2's arena).
	MallocFreeBytes  *uint64 `json:"malloc_free_bytes,omitempty"`
	MallocArenaBytes *uint64 `json:"malloc_arena_bytes,omitempty"`
	// Notes say what could not be told, and why.
	Notes []string `json:"notes,omitempty"`
}

// SortKey orders processes.
type SortKey string

// The sort keys.
const (
	SortActual SortKey = "actual" // RSS + swap (default)
	SortRSS    SortKey = "rss"
	SortPSS    SortKey = "pss"
	SortUSS    SortKey = "uss"
	SortAnon   SortKey = "anon"
	SortSwap   SortKey = "swap"
)

// ParseSortKey reads a --sort value.
func ParseSortKey(s string) (SortKey, error) {
	switch k := SortKey(s); k {
	case SortActual, SortRSS, SortPSS, SortUSS, SortAnon, SortSwap:
		return k, nil
	}
	return "", fmt.Errorf("unknown sort key %q: actual, rss, pss, uss, anon or swap", s)
}

func (p *Process) key(k SortKey) uint64 {
	switch k {
	case SortRSS:
		return p.RSSBytes
	case SortAnon:
		return p.AnonBytes
	case SortSwap:
		return p.SwapBytes
	case SortPSS:
		if p.Rollup != nil {
			return p.Rollup.PSS + p.Rollup.SwapPSS
		}
		return p.ActualBytes() // over the cap: the best known
	case SortUSS:
		if p.Rollup != nil {
			return p.Rollup.USS
		}
		return p.AnonBytes
	}
	return p.ActualBytes()
}

// Options say what to read.
type Options struct {
	// Proc is the proc filesystem (its zero value the live one).
	Proc proc.FS
	// RSSCap: processes above it are not read from smaps_rollup (0: 8 GiB).
	RSSCap uint64
	// Deep reads smaps_rollup whatever the RSS and the time it takes.
	Deep bool
	// RollupBudget bounds the time tier 2 takes in all (0:
	// DefaultRollupBudget; negative: none). It is spent on the largest
	// processes first; those left are skipped, and said to be.
	RollupBudget time.Duration
	// Top is how many processes get tier 3 (0: 5).
	Top  int
	Sort SortKey
	// Prober tells Go programs from their executables (nil: the one
	// elfinfo.CheckGoFile uses). A Prober leaves at most one probe hanging
	// per process, however many cycles ask.
	Prober *elfinfo.Prober
	// Budget bounds the time tier 3 takes in all (0: DefaultBudget); a
	// process is diagnosed only while some is left.
	Budget time.Duration
	// MaxMappings caps /proc/PID/maps for a diagnosis (0: DefaultMaxMappings):
	// a process past it is skipped, and said to be.
	MaxMappings int
	// Keep, when set, drops the processes it refuses after tier 1, before
	// any costlier read (Filter.Keep).
	Keep func(*Process) bool
}

// DefaultBudget and DefaultMaxMappings bound tier 3: five processes of
// 65,508 mappings each took 3.75 s and hid every diagnosis.
const (
	DefaultBudget      = 2 * time.Second
	DefaultMaxMappings = 20000
)

// DefaultRSSCap is the RSS above which smaps_rollup is not read.
const DefaultRSSCap = 8 << 30

// DefaultRollupBudget bounds tier 2: each rollup walks the page tables, and
// a host's few large processes (a 60,000-mapping one took 24 ms) would
// otherwise make top several times slower than ps aux.
const DefaultRollupBudget = 25 * time.Millisecond

// Scan is one reading of the host.
type Scan struct {
	At        time.Time
	Processes []*Process // sorted by the key, largest first
	// Exited counts processes gone between the listing and their read;
	// Kernel counts kernel threads (no memory of their own); Denied
	// counts processes whose status could not be read.
	Exited, Kernel, Denied int
	// RollupSkipped counts processes over the cap, RollupOutOfTime those
	// whose rollup the budget left unread, RollupManyMappings those whose
	// maps tier 3 found past the mappings cap; DiagnosisSkipped the top
	// processes not diagnosed (maps past the cap, the budget spent).
	RollupSkipped, RollupOutOfTime, RollupManyMappings, DiagnosisSkipped int
	Sort                                                                 SortKey
}

// Read scans the host.
func Read(o Options) (*Scan, error) {
	root := o.Proc.Root()
	if o.RSSCap == 0 {
		o.RSSCap = DefaultRSSCap
	}
	if o.Top == 0 {
		o.Top = 5
	}
	if o.Sort == "" {
		o.Sort = SortActual
	}
	if o.RollupBudget == 0 {
		o.RollupBudget = DefaultRollupBudget
	}
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.MaxMappings == 0 {
		o.MaxMappings = DefaultMaxMappings
	}
	d, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("listing processes in %s: %w", root, err)
	}
	s := &Scan{At: time.Now(), Sort: o.Sort}
	s.readAll(root, names, o)
	if o.Sort == SortPSS || o.Sort == SortUSS {
		// The order is tier 2's: the top are known once it is read.
		s.readRollups(root, o)
		s.sortBy(o.Sort)
		diagnoseTop(s, root, o)
		return s, nil
	}
	// The order is tier 1's: the top are diagnosed first, beside the smaller
	// processes' rollups, so that a process whose maps are past the cap is
	// not walked again by its own rollup (each mapping costs the walk as
	// much as a page: one of 60,000 one-page mappings took 11 ms, half of
	// ps aux for the whole host).
	s.sortBy(o.Sort)
	s.diagnoseThenRollups(root, o)
	return s, nil
}

// sortBy orders the processes by key, largest first, then by pid.
func (s *Scan) sortBy(key SortKey) {
	sort.SliceStable(s.Processes, func(i, j int) bool {
		a, b := s.Processes[i].key(key), s.Processes[j].key(key)
		if a != b {
			return a > b
		}
		return s.Processes[i].PID < s.Processes[j].PID
	})
}

// readWorkers bounds the goroutines reading tiers 1 and 2. The kernel does
// the work (a large process's smaps_rollup walks its page tables for tens
// of milliseconds): two walks at once on two cores take half as long, and
// one slow walk no longer holds the others up.
const readWorkers = 4

// readAll reads tier 1 of every process named in names (the entries of
// root) into s, on workers; the processes come out in names' order.
func (s *Scan) readAll(root string, names []string, o Options) {
	type result struct {
		read    bool // a process's entry, read
		p       *Process
		err     error
		dropped bool // refused by Options.Keep
	}
	results := make([]result, len(names))
	onWorkers(len(names), func(i int, buf []byte) {
		pid, err := strconv.Atoi(names[i])
		if err != nil || pid <= 0 {
			return
		}
		p, err := readStatus(filepath.Join(root, names[i], "status"), pid, buf)
		if err == nil && p != nil && o.Keep != nil && !o.Keep(p) {
			results[i] = result{read: true, dropped: true}
			return
		}
		results[i] = result{read: true, p: p, err: err}
	})
	for _, r := range results {
		switch {
		case !r.read, r.dropped:
			// not a process, or not one asked for
		case errors.Is(r.err, fs.ErrNotExist), errors.Is(r.err, errGone):
			s.Exited++
		case r.err != nil:
			s.Denied++
		case r.p == nil:
			s.Kernel++
		default:
			s.Processes = append(s.Processes, r.p)
		}
	}
}

// rollups is tier 2: smaps_rollup of each process under the cap and not
// found past the mappings cap by tier 3, largest first, until the budget is
// spent.
type rollups struct {
	order    []*Process // largest first
	outcome  []int8     // 1: over the cap; 2: out of time; 3: too many mappings
	start    sync.Once
	deadline time.Time
}

func newRollups(s *Scan) *rollups {
	r := &rollups{order: make([]*Process, len(s.Processes)), outcome: make([]int8, len(s.Processes))}
	copy(r.order, s.Processes)
	sort.SliceStable(r.order, func(i, j int) bool { return r.order[i].ActualBytes() > r.order[j].ActualBytes() })
	return r
}

// read reads the i-th largest process's rollup, or says why not. The
// budget starts with the first.
func (r *rollups) read(i int, root string, o Options, buf []byte) {
	r.start.Do(func() { r.deadline = time.Now().Add(o.RollupBudget) })
	p := r.order[i]
	switch {
	case p.RSSBytes > o.RSSCap && !o.Deep:
		p.Skipped = fmt.Sprintf("skipped: RSS %s > cap (--deep to read)", humanize.Bytes(p.RSSBytes))
		r.outcome[i] = 1
	case p.tooManyMappings && !o.Deep:
		p.Skipped = fmt.Sprintf("skipped: smaps_rollup would walk each of its over %d mappings (--deep to read)", o.MaxMappings)
		r.outcome[i] = 3
	case !o.Deep && o.RollupBudget > 0 && time.Now().After(r.deadline):
		p.Skipped = fmt.Sprintf("skipped: the %v for smaps_rollup was spent on larger processes (--deep to read)", o.RollupBudget)
		r.outcome[i] = 2
	default:
		readTier2(p, root, buf)
	}
}

// count adds the outcomes to s's counters.
func (r *rollups) count(s *Scan) {
	for _, k := range r.outcome {
		switch k {
		case 1:
			s.RollupSkipped++
		case 2:
			s.RollupOutOfTime++
		case 3:
			s.RollupManyMappings++
		}
	}
}

// readRollups reads tier 2 alone.
func (s *Scan) readRollups(root string, o Options) {
	r := newRollups(s)
	onWorkers(len(r.order), func(i int, buf []byte) { r.read(i, root, o, buf) })
	r.count(s)
}

// onWorkers calls fn(i, buf) for every i in [0, n) on up to readWorkers
// goroutines, each with its own read buffer.
func onWorkers(n int, fn func(i int, buf []byte)) {
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	var wg sync.WaitGroup
	for range min(readWorkers, runtime.GOMAXPROCS(0), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			for i := range next {
				fn(i, buf)
			}
		}()
	}
	wg.Wait()
}

// readTier2 reads p's smaps_rollup.
func readTier2(p *Process, root string, buf []byte) {
	r, err := readRollup(filepath.Join(root, strconv.Itoa(p.PID), "smaps_rollup"), buf)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errGone):
		p.Skipped = "exited while read"
	case errors.Is(err, fs.ErrPermission):
		p.Skipped = "smaps_rollup: permission denied (needs its uid or CAP_SYS_PTRACE)"
	case err != nil:
		p.Skipped = "smaps_rollup: " + err.Error()
	default:
		p.Rollup = r
	}
}

// diagnoseTop is tier 3 alone: the top few, from maps, within the budget.
func diagnoseTop(s *Scan, root string, o Options) {
	d := newDiagnoses(s, o)
	onWorkers(len(d.top), func(i int, _ []byte) { d.diagnose(i, root) })
	d.count(s)
}

// diagnoseThenRollups reads tiers 3 and 2 on the same workers: the
// diagnoses first (none depends on another: each is a read of one
// process's maps and glibc heap), then the rollups, largest first, each of
// the top waiting for its own diagnosis, which may find its maps past the
// cap and its rollup not worth the walk.
func (s *Scan) diagnoseThenRollups(root string, o Options) {
	d := newDiagnoses(s, o)
	r := newRollups(s)
	topIndex := make(map[*Process]int, len(d.top))
	for i, p := range d.top {
		topIndex[p] = i
	}
	// onWorkers hands out the indexes in order: every diagnosis has been
	// taken up before the first rollup waits for one.
	onWorkers(len(d.top)+len(r.order), func(i int, buf []byte) {
		if i < len(d.top) {
			d.diagnose(i, root)
			return
		}
		i -= len(d.top)
		if k, ok := topIndex[r.order[i]]; ok {
			<-d.done[k]
		}
		r.read(i, root, o, buf)
	})
	d.count(s)
	r.count(s)
}

// diagnoses is tier 3: the top few, from maps, within the budget.
type diagnoses struct {
	top      []*Process
	done     []chan struct{} // closed when top[i] is diagnosed (or not)
	o        Options
	deadline time.Time
}

func newDiagnoses(s *Scan, o Options) *diagnoses {
	d := &diagnoses{top: s.Processes[:min(o.Top, len(s.Processes))], o: o, deadline: time.Now().Add(o.Budget)}
	d.done = make([]chan struct{}, len(d.top))
	for i := range d.done {
		d.done[i] = make(chan struct{})
	}
	return d
}

// diagnose diagnoses top[i], or says why not.
func (d *diagnoses) diagnose(i int, root string) {
	defer close(d.done[i])
	p := d.top[i]
	if time.Now().After(d.deadline) {
		p.DiagnosisSkipped = fmt.Sprintf("not diagnosed: the %v budget was spent", d.o.Budget)
		return
	}
	dg, err := diagnose(root, p.PID, diagnoseOptions{prober: d.o.Prober, maxMappings: d.o.MaxMappings, deadline: d.deadline})
	switch {
	case errors.Is(err, errTooManyMappings):
		p.DiagnosisSkipped = fmt.Sprintf("not diagnosed: over %d mappings in /proc/PID/maps", d.o.MaxMappings)
		p.tooManyMappings = true
	case err == nil:
		p.Diagnosis = dg
	}
}

func (d *diagnoses) count(s *Scan) {
	for _, p := range d.top {
		if p.DiagnosisSkipped != "" {
			s.DiagnosisSkipped++
		}
	}
}

var errTooManyMappings = errors.New("too many mappings")

// diagnoseOptions bound one diagnosis.
type diagnoseOptions struct {
	prober      *elfinfo.Prober // nil: elfinfo's own
	maxMappings int             // 0: no cap
	deadline    time.Time       // zero: none
}

// heapReadLeast is the budget a read of glibc's heap needs left to start.
const heapReadLeast = 250 * time.Millisecond

// readMaps reads path (a /proc/PID/maps) whole, failing with
// errTooManyMappings past max lines (0: no cap) and with
// input.ErrTooLarge past 64 MiB. It keeps what it read in chunks, never
// copied to grow: a top run is short, and every byte it allocates is a
// fresh page the kernel faults in.
func readMaps(path string, max int) (io.Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := input.LimitReader(f, 64<<20, path)
	const chunkSize = 64 << 10
	var chunks []io.Reader
	lines := 0
	for {
		chunk := make([]byte, chunkSize)
		n, err := io.ReadFull(r, chunk)
		lines += bytes.Count(chunk[:n], []byte{'\n'})
		if n > 0 {
			chunks = append(chunks, bytes.NewReader(chunk[:n]))
		}
		if max > 0 && (lines > max || lines == max && n > 0 && chunk[n-1] != '\n') {
			return nil, fmt.Errorf("%s: %w: over %d", path, errTooManyMappings, max)
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return io.MultiReader(chunks...), nil
		case err != nil:
			return nil, err
		}
	}
}

var errGone = errors.New("process exited")

// readFile reads a small /proc file into buf, which bounds it.
func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		if errors.Is(err, syscall.ESRCH) {
			return nil, errGone
		}
		return nil, err
	}
	return buf[:n], nil
}

// readStatus reads tier 1. A kernel thread (no VmRSS line) gives nil.
func readStatus(path string, pid int, buf []byte) (*Process, error) {
	b, err := readFile(path, buf)
	if err != nil {
		return nil, err
	}
	p := &Process{PID: pid, UID: -1}
	hasMM := false
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		key, val := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch string(key) {
		case "Name":
			// Only the tab after the colon: bytes.TrimSpace would also take
			// a name's own trailing spaces and U+0085 (NEL).
			p.Command = string(bytes.TrimPrefix(line[colon+1:], []byte{'\t'}))
		case "PPid":
			p.PPID, _ = strconv.Atoi(string(val))
		case "Uid":
			if f := bytes.Fields(val); len(f) > 0 {
				p.UID, _ = strconv.Atoi(string(f[0]))
			}
		case "Threads":
			p.Threads, _ = strconv.Atoi(string(val))
		case "VmRSS":
			p.RSSBytes, hasMM = kB(val), true
		case "RssAnon":
			p.AnonBytes = kB(val)
		case "RssFile":
			p.FileBytes = kB(val)
		case "RssShmem":
			p.ShmemBytes = kB(val)
		case "VmSwap":
			p.SwapBytes = kB(val)
		}
	}
	if p.Command == "" {
		return nil, fmt.Errorf("%s: no Name line", path)
	}
	if !hasMM {
		return nil, nil
	}
	return p, nil
}

// kB reads "1234 kB".
func kB(v []byte) uint64 {
	if i := bytes.IndexByte(v, ' '); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.ParseUint(string(v), 10, 64)
	return n << 10
}

// readRollup reads smaps_rollup's "Key: N kB" lines.
func readRollup(path string, buf []byte) (*Rollup, error) {
	b, err := readFile(path, buf)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errGone // a zombie's, or one that exited
	}
	r := &Rollup{}
	var privClean, privDirty uint64
	seen := false
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		v := kB(bytes.TrimSpace(line[colon+1:]))
		switch string(line[:colon]) {
		case "Pss":
			r.PSS, seen = v, true
		case "Pss_Anon":
			r.PSSAnon = v
		case "Pss_File":
			r.PSSFile = v
		case "Pss_Shmem":
			r.PSSShmem = v
		case "SwapPss":
			r.SwapPSS = v
		case "Private_Clean":
			privClean = v
		case "Private_Dirty":
			privDirty = v
		}
	}
	if !seen {
		return nil, fmt.Errorf("%s: no Pss line", path)
	}
	r.USS = privClean + privDirty
	return r, nil
}

// Diagnose reads /proc/PID/maps (no page walk) for what its geometry and
// libraries tell.
func Diagnose(procRoot string, pid int) (*Diagnosis, error) {
	return diagnose(procRoot, pid, diagnoseOptions{})
}

// exeWait is how long a diagnosis waits for the executable to answer.
const exeWait = 500 * time.Millisecond

// isGo asks prober (nil: elfinfo's own) whether the process runs a Go
// program, and says why it could not tell when the executable hangs.
func isGo(procRoot string, pid int, prober *elfinfo.Prober) (bool, string) {
	path := filepath.Join(procRoot, strconv.Itoa(pid), "exe")
	var g bool
	var err error
	if prober != nil {
		g, err = prober.Check(path, exeWait)
	} else {
		g, err = elfinfo.CheckGoFile(path, exeWait)
	}
	switch {
	case errors.Is(err, elfinfo.ErrPending):
		return false, "executable: still hanging since an earlier probe (a stalled FUSE or NFS mount?): not probed again"
	case errors.Is(err, elfinfo.ErrSlow):
		return false, fmt.Sprintf("executable: no answer within %v (a stalled FUSE or NFS mount?): Go not told", exeWait)
	}
	return g, ""
}

func diagnose(procRoot string, pid int, o diagnoseOptions) (*Diagnosis, error) {
	b, err := readMaps(filepath.Join(procRoot, strconv.Itoa(pid), "maps"), o.maxMappings)
	if err != nil {
		return nil, err
	}
	ms, err := pmap.ParseSmaps(b, "maps")
	if err != nil {
		return nil, err
	}
	pmap.Classify(ms, pmap.Hints{})
	d := &Diagnosis{}
	var note string
	if d.Go, note = isGo(procRoot, pid, o.prober); note != "" {
		d.Notes = append(d.Notes, note)
	}
	const heap = 64 << 20
	for i := range ms {
		m := &ms[i]
		if filepath.Base(m.Name) == "libjvm.so" {
			d.JVM = true
		}
		switch k := allocator.OfLibrary(m.Name); {
		case k == allocator.Jemalloc || k == allocator.Tcmalloc:
			d.Allocator = string(k)
		case k == allocator.Glibc && d.Allocator == "":
			d.Allocator = string(k)
		}
		if d.Go || m.Class != pmap.ClassGlibcArena || m.Perms != "rw-p" {
			continue
		}
		d.ArenaCommittedBytes += m.Len()
		end := m.End
		if i+1 < len(ms) && ms[i+1].Class == pmap.ClassGlibcArena && ms[i+1].Perms == "---p" && ms[i+1].Start == m.End {
			end = ms[i+1].End
		}
		d.ArenaHeaps += int((end - m.Start + heap - 1) / heap)
	}
	if d.Allocator == "glibc" && !o.deadline.IsZero() && time.Until(o.deadline) < heapReadLeast {
		d.Notes = append(d.Notes, "glibc's free bytes not read: the time budget was spent")
	} else if d.Allocator == "glibc" {
		// Without stopping it: top looks at many processes, and pauses
		// none of them.
		h, err := glibcheap.Reader{Proc: proc.NewFS(procRoot), NoStop: true, Deadline: o.deadline}.Read(pid)
		switch {
		case err == nil:
			m := h.Mallinfo2()
			d.MallocFreeBytes, d.MallocArenaBytes = &m.Fordblks, &m.Arena
		case errors.Is(err, glibcheap.ErrOutOfTime):
			d.Notes = append(d.Notes, "glibc's free bytes not read: its heap's free lists outlasted the time budget")
		}
	}
	return d, nil
}

// Growth is how a process changed between two scans.
type Growth struct {
	// BytesPerSecond is the change of RSS + swap per second (negative
	// when it shrank).
	BytesPerSecond float64
	// Grew names the kind that grew most: anon, file, shmem or swap; ""
	// when none grew.
	Grew string
}

// Compare returns each process's growth from a to b, by pid; a process
// whose pid was reused (another command) counts as new.
func Compare(a, b *Scan) map[int]*Growth {
	dt := b.At.Sub(a.At).Seconds()
	if dt <= 0 {
		dt = 1
	}
	before := make(map[int]*Process, len(a.Processes))
	for _, p := range a.Processes {
		before[p.PID] = p
	}
	out := make(map[int]*Growth, len(b.Processes))
	for _, p := range b.Processes {
		q := before[p.PID]
		if q == nil || q.Command != p.Command {
			continue
		}
		g := &Growth{BytesPerSecond: (float64(p.ActualBytes()) - float64(q.ActualBytes())) / dt}
		var best int64
		for _, k := range []struct {
			name string
			d    int64
		}{{"anon", int64(p.AnonBytes) - int64(q.AnonBytes)}, {"file", int64(p.FileBytes) - int64(q.FileBytes)},
			{"shmem", int64(p.ShmemBytes) - int64(q.ShmemBytes)}, {"swap", int64(p.SwapBytes) - int64(q.SwapBytes)}} {
			if k.d > best {
				best, g.Grew = k.d, k.name
			}
		}
		out[p.PID] = g
	}
	return out
}
