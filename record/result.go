package record

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/syscalltrace"
)

// Result is what a recording saw.
type Result struct {
	PID  int
	Comm string
	// Duration is how long the probes were attached.
	Duration time.Duration
	// Final is false for a snapshot taken at an interval.
	Final bool
	// Exited is set when the process ended during the recording.
	Exited bool

	MinSize, SampleBytes uint64
	// FollowForks: the processes PID forked were recorded too.
	FollowForks bool
	// Probes are the files probed in process PID (a child probes the
	// same files, the ones it maps).
	Probes []Probe
	// Processes are the processes recorded: PID first, then the children
	// followed, in pid order.
	Processes []Process

	// Stacks are the allocations by call stack, largest outstanding first.
	Stacks []Stack
	// Outstanding sums the stacks.
	OutstandingBytes, OutstandingCount uint64
	AllocBytes                         uint64

	Counts Counts

	// Mappings replays the mapping system calls seen; Outstanding are the
	// mappings made and not released, with their stacks.
	Mappings    *syscalltrace.Replay
	Outstanding []*syscalltrace.Mapping

	Notes []string
}

// Process is one process recorded, with its share of the figures.
type Process struct {
	PID, PPID int // PPID is 0 for the process the recording began with
	Comm      string
	// ForkedAt is when a child was forked, since the recording began;
	// AttachDelay is from its fork to its probes attached: the allocator
	// calls it made in between are not recorded (its mapping calls are).
	ForkedAt, AttachDelay time.Duration
	// Exited: the process ended during the recording, at ExitedAt; what
	// it had not freed is reported as outstanding at its exit.
	Exited   bool
	ExitedAt time.Duration
	// OutstandingBytes, OutstandingCount and AllocBytes sum its stacks.
	OutstandingBytes, OutstandingCount, AllocBytes uint64
}

// Probe is one file whose allocator functions were probed.
type Probe struct {
	Path      string
	Functions []string // attached
	Missing   []string // not in the file (or refused, with Errors)
	Errors    []string
}

// Counts are the recording's own figures: what it saw, what it lost.
type Counts struct {
	// Calls are allocator calls of the process seen (entries).
	Calls uint64
	// Allocs and Frees are the recorded allocations and their matched
	// frees; Unmatched frees of recorded pointers the table did not know.
	Allocs, Frees, Unmatched uint64
	// SkippedSmall are allocations under MinSize; SkippedSample those
	// sampling passed over.
	SkippedSmall, SkippedSample uint64
	// Syscalls are mapping system calls seen.
	Syscalls uint64
	// LostAllocs, LostFrees and LostMappings are events the ring buffer had
	// no room for. A lost allocation is not recorded at all (nor its free);
	// a lost free leaves its allocation shown as outstanding.
	LostAllocs, LostFrees, LostMappings uint64
	// LostForks are children of a recorded process not followed: the
	// ring buffer or the kernel's table of processes had no room.
	LostForks uint64
	// TrackFull are allocations the kernel's table had no room for: their
	// frees are not seen, so they stay outstanding.
	TrackFull uint64
	// PendingFull are calls in flight on more threads than the kernel's
	// table of calls in flight holds: not recorded.
	PendingFull uint64
	// Summarised are allocations dropped from the table past its cap.
	Summarised, SummarisedBytes uint64
	// Stacks: taken, failed (no frames could be read, or the stack table
	// was full), short (one frame: the caller has no frame pointer).
	Stacks, StacksFailed, StacksShort, StacksTruncated uint64
}

// Lost is every event lost or not tracked: non-zero means the figures are
// incomplete.
func (c Counts) Lost() uint64 {
	return c.LostAllocs + c.LostFrees + c.LostMappings + c.LostForks + c.TrackFull + c.PendingFull
}

// stackError words a bpf_get_stackid error.
func stackError(id int32) string {
	switch -id {
	case 14: // EFAULT
		return "no user stack could be read"
	case 17: // EEXIST
		return "the kernel's stack table had a collision (raise --stack-slots)"
	case 12: // ENOMEM
		return "the kernel's stack table was full (raise --stack-slots)"
	}
	return fmt.Sprintf("the stack could not be taken (error %d)", -id)
}

// WriteProfile writes r's allocations as a gzipped pprof heap profile:
// inuse_objects, inuse_space (outstanding at the end), alloc_objects and
// alloc_space (all recorded), each at its stack, leaf first. When
// sampling, the values are the unsampled estimates.
// Open with: go tool pprof -sample_index=inuse_space FILE
func WriteProfile(w io.Writer, r *Result) error {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{
			{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"},
			{Type: "inuse_objects", Unit: "count"}, {Type: "inuse_space", Unit: "bytes"},
		},
		DefaultSampleType: "inuse_space",
		PeriodType:        &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:            int64(max(r.SampleBytes, 1)),
		DurationNanos:     r.Duration.Nanoseconds(),
		Comments:          []string{fmt.Sprintf("memdiag record of process %d (%s) for %s", r.PID, r.Comm, r.Duration.Round(time.Millisecond))},
	}
	locate := syscalltrace.ProfileLocations(p)
	for _, s := range r.Stacks {
		frames := s.Frames
		if len(frames) == 0 {
			frames = []syscalltrace.Frame{{Func: "(no stack: " + s.Unwound + ")"}}
		}
		p.Sample = append(p.Sample, &profile.Sample{Location: locate(frames), Label: map[string][]string{"pid": {strconv.Itoa(s.PID)}},
			Value: []int64{int64(s.AllocCount), int64(s.AllocBytes), int64(s.OutstandingCount), int64(s.OutstandingBytes)}})
	}
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("building the profile: %w", err)
	}
	return p.Write(w)
}

// Findings says what the recording proves: memory allocated and not freed
// by a stack (a malloc leak while the recording lasted), and anonymous
// mappings made and never released (as trace says them).
func Findings(r *Result) []finding.Finding {
	var out []finding.Finding
	if f, ok := mallocFinding(r); ok {
		out = append(out, f)
	}
	if r.Mappings != nil && len(r.Outstanding) > 0 {
		groups := syscalltrace.Groups(r.Outstanding, syscalltrace.GroupAuto, nil)
		for _, f := range syscalltrace.Findings(r.Outstanding, groups, &r.Mappings.Stats, fmt.Sprintf("recorded from process %d", r.PID), false) {
			// trace's finding, with what to do next said for a recording
			f.Summary = strings.ReplaceAll(f.Summary, "during the trace", "during the recording")
			f.Advice = []string{
				"Weigh them by what is resident: memdiag explain --pid PID --record 30s joins the recording with smaps.",
				"Start-up mappings (libraries, thread stacks, arenas) are outstanding too: record in steady state, or record -- COMMAND and compare with a second recording later.",
			}
			out = append(out, f)
		}
	}
	finding.Sort(out)
	return out
}

func mallocFinding(r *Result) (finding.Finding, bool) {
	if len(r.Stacks) == 0 || r.OutstandingBytes == 0 {
		return finding.Finding{}, false
	}
	top := r.Stacks[0]
	if top.OutstandingBytes == 0 {
		return finding.Finding{}, false
	}
	who := "a stack that could not be taken (" + top.Unwound + ")"
	if len(top.Frames) > 0 {
		who = syscalltrace.StackLabel(top.Frames)
	}
	if len(r.Processes) > 1 {
		who += fmt.Sprintf(" in process %d", top.PID)
	}
	sev := finding.Info
	if top.OutstandingBytes >= 64<<20 || (r.AllocBytes > 0 && top.OutstandingBytes >= 16<<20 && float64(top.OutstandingBytes) >= 0.5*float64(top.AllocBytes)) {
		sev = finding.Medium
	}
	what := fmt.Sprintf("process %d", r.PID)
	if n := len(r.Processes) - 1; n > 0 {
		what += fmt.Sprintf(" and %d processes forked from it", n)
	}
	source := fmt.Sprintf("uprobes on the allocator of %s over %s", what, r.Duration.Round(time.Millisecond))
	ev := []string{fmt.Sprintf("%s: %d allocations recorded (%d B), %d freed; %d B in %d allocations outstanding at the end",
		source, r.Counts.Allocs, r.AllocBytes, r.Counts.Frees, r.OutstandingBytes, r.OutstandingCount)}
	for i, s := range r.Stacks {
		if i == 3 || s.OutstandingBytes == 0 {
			break
		}
		label := "(no stack: " + s.Unwound + ")"
		if len(s.Frames) > 0 {
			label = syscalltrace.StackLabel(s.Frames)
		}
		if len(r.Processes) > 1 {
			label = fmt.Sprintf("process %d: %s", s.PID, label)
		}
		ev = append(ev, fmt.Sprintf("%d B in %d allocations outstanding (of %d B allocated), the oldest %s old: %s",
			s.OutstandingBytes, s.OutstandingCount, s.AllocBytes, s.OldestAge.Round(time.Millisecond), label))
	}
	if n := r.Counts.Lost(); n > 0 {
		ev = append(ev, fmt.Sprintf("%d events were lost or not tracked: the figures are a lower bound for allocations, an upper bound for what is outstanding", n))
	}
	if r.SampleBytes > 0 {
		ev = append(ev, fmt.Sprintf("sampled: one allocation per %d B allocated on average, figures scaled up", r.SampleBytes))
	}
	advice := []string{
		"Open the stacks: memdiag record --pprof heap.pb.gz …, then go tool pprof -sample_index=inuse_space -top heap.pb.gz.",
		"Memory allocated at start-up and kept is outstanding too: record again in steady state and compare, or use --interval to watch the stack grow.",
	}
	return finding.Finding{
		ID:       "malloc-outstanding-by-stack",
		Severity: sev,
		Summary: fmt.Sprintf("%s allocated during the recording is not freed; the leading stack holds %s in %d allocations: %s",
			humanize.Bytes(r.OutstandingBytes), humanize.Bytes(top.OutstandingBytes), top.OutstandingCount, who),
		Bytes:    top.OutstandingBytes,
		Evidence: ev,
		Advice:   advice,
	}, true
}
