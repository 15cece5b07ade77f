package syscalltrace

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/memdiag/memdiag/finding"
	"github.com/memdiag/memdiag/internal/humanize"
	"github.com/memdiag/memdiag/pmap"
)

// GroupBy chooses how outstanding mappings are grouped.
type GroupBy string

// The groupings; GroupAuto is the stack when the trace has stacks, else the size.
const (
	GroupAuto   GroupBy = ""
	GroupStack  GroupBy = "stack"
	GroupLeaf   GroupBy = "leaf"
	GroupSize   GroupBy = "size"
	GroupThread GroupBy = "thread"
	GroupFlags  GroupBy = "flags"
)

// Group is outstanding mappings sharing a key.
type Group struct {
	Key   string
	Count int
	// Commits counts its members that are growth inside older reservations
	// (Mapping.Committed), not mappings of their own.
	Commits       int
	Bytes         uint64
	ResidentBytes uint64 // with a smaps join
	// WritableAnonBytes are the bytes of its anonymous mappings made
	// writable: memory it can fill, unlike a PROT_NONE reservation (glibc's
	// 64 MiB arena heaps, a JVM's heap and code cache before commit).
	WritableAnonBytes uint64
	// Kind is its first mapping's Kind: "" for what may be a leak.
	Kind     string
	Frames   []Frame
	Mappings []*Mapping
}

// MadeBy reports whether a frame of the stack that made m lies in a module
// whose file name is module ("libjvm.so").
func (m *Mapping) MadeBy(module string) bool {
	for _, f := range m.Frames {
		if strings.HasSuffix(f.Module, "/"+module) || f.Module == module {
			return true
		}
	}
	return false
}

// Kinds of outstanding mappings that are not leaks, whatever their size.
const (
	KindArenaHeap   = "arena-heap"   // a glibc arena's 64 MiB heap reservation
	KindThreadStack = "thread-stack" // a thread's stack, made by pthread_create
	KindJVM         = "jvm"          // the JVM's own: heap, metaspace, code cache
)

// Kind says what m is when its maker or its shape tell: KindJVM (made from
// libjvm.so), KindThreadStack (pthread_create, MAP_STACK), KindArenaHeap
// (PROT_NONE, MAP_NORESERVE, a multiple of glibc's 64 MiB HEAP_MAX_SIZE),
// or "" for memory that may be a leak.
func (m *Mapping) Kind() string {
	switch {
	case m.MadeBy("libjvm.so"):
		return KindJVM
	case strings.Contains(m.FlagsText, "STACK"):
		return KindThreadStack
	case m.Prot == "NONE" && strings.Contains(m.FlagsText, "NORESERVE") && m.Len() > 0 && m.Len()%(64<<20) == 0:
		return KindArenaHeap
	}
	for _, f := range m.Frames {
		if strings.HasPrefix(f.Func, "pthread_create") {
			return KindThreadStack
		}
	}
	return ""
}

// HasStacks reports whether any mapping carries a call stack.
func HasStacks(ms []*Mapping) bool {
	for _, m := range ms {
		if len(m.Frames) > 0 {
			return true
		}
	}
	return false
}

// Resolve picks GroupStack when there are stacks, else GroupSize.
func (g GroupBy) Resolve(ms []*Mapping) GroupBy {
	if g != GroupAuto {
		return g
	}
	if HasStacks(ms) {
		return GroupStack
	}
	return GroupSize
}

// Groups groups mappings, largest bytes first. resident maps a mapping to
// its resident bytes (nil without a smaps join).
func Groups(ms []*Mapping, by GroupBy, resident map[*Mapping]uint64) []Group {
	by = by.Resolve(ms)
	index := map[string]int{}
	var gs []Group
	for _, m := range ms {
		key := groupKey(m, by)
		i, ok := index[key]
		if !ok {
			i = len(gs)
			index[key] = i
			g := Group{Key: key, Kind: m.Kind()}
			if by == GroupStack || by == GroupLeaf {
				g.Frames = m.Frames
				if by == GroupLeaf && len(g.Frames) > 1 {
					g.Frames = g.Frames[:1]
				}
			}
			gs = append(gs, g)
		}
		g := &gs[i]
		g.Count++
		if m.Committed {
			g.Commits++
		}
		g.Bytes += m.Len()
		g.ResidentBytes += resident[m]
		if m.Anonymous && strings.Contains(m.Prot, "WRITE") {
			g.WritableAnonBytes += m.Len()
		}
		g.Mappings = append(g.Mappings, m)
	}
	// What is resident is what costs RSS; without a smaps join, what could
	// be: writable anonymous memory, not reservations mapped PROT_NONE.
	weight := func(g *Group) uint64 {
		if resident != nil {
			return g.ResidentBytes
		}
		return g.WritableAnonBytes
	}
	sort.SliceStable(gs, func(i, j int) bool {
		if wi, wj := weight(&gs[i]), weight(&gs[j]); wi != wj {
			return wi > wj
		}
		if gs[i].Bytes != gs[j].Bytes {
			return gs[i].Bytes > gs[j].Bytes
		}
		return gs[i].Key < gs[j].Key
	})
	return gs
}

// frameSkip tells the allocator's and the runtime's plumbing from the
// caller that asked: the first frame outside them names the code
// responsible. A stripped libc symbolises its internals to the nearest
// exported name ("timer_settime ← __default_morecore ← malloc"), so libc,
// the dynamic loader and the allocators are known by their module, as
// pprof's drop-frames knows them by name.
func frameSkip(f Frame) bool {
	n := f.Func
	if n == "" || strings.Contains(n, "mmap") || strings.Contains(n, "mremap") || strings.HasPrefix(n, "__GI_") ||
		strings.HasPrefix(n, "syscall") || n == "unexpected_backtracing_error" {
		return true
	}
	if f.Module == "" || strings.HasPrefix(n, "pthread_create") {
		return false // a thread's stack: the kind of mapping is the lead
	}
	base := f.Module[strings.LastIndexByte(f.Module, '/')+1:]
	for _, plumbing := range []string{"libc.so", "libc-", "ld-linux", "ld-musl", "libpthread", "libjemalloc", "libtcmalloc", "libstdc++"} {
		if strings.HasPrefix(base, plumbing) {
			return true
		}
	}
	return false
}

// Culprit is the innermost frame that is not a system call wrapper.
func Culprit(frames []Frame) (Frame, bool) {
	for _, f := range frames {
		if !frameSkip(f) {
			return f, true
		}
	}
	if len(frames) > 0 {
		return frames[0], true
	}
	return Frame{}, false
}

// StackLabel names a stack by the code that asked for the mapping (its
// Culprit), then up to three of its callers.
func StackLabel(frames []Frame) string {
	culprit, _ := Culprit(frames)
	var callers []string
	seen := false
	for _, f := range frames {
		if f == culprit {
			seen = true
			continue
		}
		if seen && f.Func != "" && len(callers) < 3 {
			callers = append(callers, f.Func)
		}
	}
	label := culprit.String()
	if len(callers) > 0 {
		label += " ← " + strings.Join(callers, " ← ")
	}
	return label
}

func groupKey(m *Mapping, by GroupBy) string {
	switch by {
	case GroupStack:
		if len(m.Frames) == 0 {
			return "(no stack)"
		}
		parts := make([]string, len(m.Frames))
		for i, f := range m.Frames {
			parts[i] = f.String()
		}
		return strings.Join(parts, " ← ")
	case GroupLeaf:
		if f, ok := Culprit(m.Frames); ok {
			return f.String()
		}
		return "(no stack)"
	case GroupThread:
		if m.Comm != "" {
			return fmt.Sprintf("%s/%d", m.Comm, m.TID)
		}
		return fmt.Sprintf("task %d", m.TID)
	case GroupFlags:
		kind := "file"
		if m.Anonymous {
			kind = "anon"
		}
		return fmt.Sprintf("%s %s %s", kind, m.Prot, m.FlagsText)
	}
	return fmt.Sprintf("%d bytes", m.Len())
}

// JoinSmaps weighs each outstanding mapping by the resident bytes smaps
// shows in its range. smaps counts per VMA, and the kernel merges adjacent
// mappings into one VMA, so a VMA's Rss is shared out in proportion to
// overlap. ms must belong to the process smaps came from.
func JoinSmaps(ms []*Mapping, vmas []pmap.Mapping) map[*Mapping]uint64 {
	out := make(map[*Mapping]uint64, len(ms))
	sorted := append([]*Mapping(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start < sorted[j].Start })
	j := 0
	for _, m := range sorted {
		for j > 0 && vmas[j-1].End > m.Start {
			j--
		}
		for j < len(vmas) && vmas[j].End <= m.Start {
			j++
		}
		var res float64
		for k := j; k < len(vmas) && vmas[k].Start < m.End; k++ {
			v := &vmas[k]
			lo, hi := max(v.Start, m.Start), min(v.End, m.End)
			if hi > lo && v.Len() > 0 {
				res += float64(v.Bytes(pmap.FieldRss)) * float64(hi-lo) / float64(v.Len())
			}
		}
		out[m] = uint64(res)
	}
	return out
}

// WriteProfile writes outstanding mappings as a gzipped pprof profile:
// samples {outstanding_mappings,count} and {outstanding,bytes} (and
// {resident,bytes} with a smaps join) at each mapping's stack, leaf first.
// Open with: go tool pprof -sample_index=outstanding FILE
func WriteProfile(w io.Writer, ms []*Mapping, resident map[*Mapping]uint64) error {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "outstanding_mappings", Unit: "count"}, {Type: "outstanding", Unit: "bytes"}},
		PeriodType: &profile.ValueType{Type: "outstanding", Unit: "bytes"},
		Period:     1,
	}
	if resident != nil {
		p.SampleType = append(p.SampleType, &profile.ValueType{Type: "resident", Unit: "bytes"})
	}
	p.DefaultSampleType = "outstanding"
	locate := ProfileLocations(p)
	for _, m := range ms {
		frames := m.Frames
		if len(frames) == 0 {
			frames = []Frame{{Func: "(no stack)"}}
		}
		s := &profile.Sample{Value: []int64{1, int64(m.Len())}, NumLabel: map[string][]int64{"tid": {int64(m.TID)}}}
		if resident != nil {
			s.Value = append(s.Value, int64(resident[m]))
		}
		s.Location = locate(frames)
		p.Sample = append(p.Sample, s)
	}
	if err := p.CheckValid(); err != nil {
		return fmt.Errorf("building the profile: %w", err)
	}
	return p.Write(w)
}

// ProfileLocations returns what turns a stack, innermost first, into p's
// locations, adding each module, function and location to p once.
func ProfileLocations(p *profile.Profile) func([]Frame) []*profile.Location {
	mappings := map[string]*profile.Mapping{}
	functions := map[string]*profile.Function{}
	locations := map[string]*profile.Location{}
	mappingOf := func(module string) *profile.Mapping {
		if module == "" {
			return nil
		}
		if m, ok := mappings[module]; ok {
			return m
		}
		m := &profile.Mapping{ID: uint64(len(p.Mapping) + 1), File: module, HasFunctions: true}
		mappings[module] = m
		p.Mapping = append(p.Mapping, m)
		return m
	}
	functionOf := func(f Frame) *profile.Function {
		name := f.Func
		if name == "" {
			name = fmt.Sprintf("%#x", f.Addr)
		}
		key := name + "\x00" + f.Module
		if fn, ok := functions[key]; ok {
			return fn
		}
		fn := &profile.Function{ID: uint64(len(p.Function) + 1), Name: name, SystemName: name, Filename: f.Module}
		functions[key] = fn
		p.Function = append(p.Function, fn)
		return fn
	}
	locationOf := func(f Frame) *profile.Location {
		key := fmt.Sprintf("%s\x00%s\x00%x", f.Func, f.Module, f.Addr)
		if l, ok := locations[key]; ok {
			return l
		}
		l := &profile.Location{ID: uint64(len(p.Location) + 1), Address: f.Addr, Mapping: mappingOf(f.Module),
			Line: []profile.Line{{Function: functionOf(f)}}}
		locations[key] = l
		p.Location = append(p.Location, l)
		return l
	}
	return func(frames []Frame) []*profile.Location {
		out := make([]*profile.Location, len(frames))
		for i, f := range frames {
			out[i] = locationOf(f)
		}
		return out
	}
}

// Findings summarises what the trace proves: anonymous memory made and
// never unmapped, and by whom.
//
// weighed says whether groups carry resident bytes from a smaps join.
func Findings(ms []*Mapping, groups []Group, st *Stats, source string, weighed bool) []finding.Finding {
	var anon, committed uint64
	n, commits := 0, 0
	for _, m := range ms {
		switch {
		case m.Committed:
			committed += m.Len()
			commits++
		case m.Anonymous:
			anon += m.Len()
			n++
		}
	}
	if n+commits == 0 || len(groups) == 0 {
		return nil
	}
	// The lead is the first group that may be a leak: arena heaps, thread
	// stacks and the JVM's own mappings are what they are.
	top := groups[0]
	for _, g := range groups {
		if g.Kind == "" {
			top = g
			break
		}
	}
	who := "came from " + top.Key
	if len(top.Frames) > 0 {
		if f, ok := Culprit(top.Frames); ok {
			who = "came from " + f.String()
		}
	} else {
		who = "grouped by " + top.Key
	}
	sev := finding.Info
	if made := st.MappedBytes + st.CommittedBytes; made > 0 && float64(anon+committed) >= 0.25*float64(made) && anon+committed >= 64<<20 {
		sev = finding.Medium
	}
	ev := []string{fmt.Sprintf("%s: %d memory calls replayed; %d B mapped and %d B unmapped over the trace; %d anonymous mappings (%d B) never unmapped",
		source, st.Events, st.MappedBytes, st.UnmappedBytes, n, anon)}
	if commits > 0 {
		ev = append(ev, fmt.Sprintf("%d B made writable by mprotect inside reservations older than the trace (heaps growing: glibc's grow_heap, a runtime's commit), %d B of it still so", st.CommittedBytes, committed))
	}
	for i, g := range groups {
		if i == 3 {
			break
		}
		if weighed {
			ev = append(ev, fmt.Sprintf("%s, %d B mapped, %d B resident: %s", members(g), g.Bytes, g.ResidentBytes, g.Key))
		} else {
			ev = append(ev, fmt.Sprintf("%s, %d B: %s", members(g), g.Bytes, g.Key))
		}
	}
	var advice []string
	if HasStacks(ms) {
		advice = append(advice, "Open the stacks: memdiag trace FILE --pprof leaks.pb.gz, then go tool pprof -sample_index=outstanding -top leaks.pb.gz (or -http=:).")
	} else {
		advice = append(advice, "Name the code: capture the trace with stacks (strace -f -k -e trace=memory, perf trace --call-graph dwarf, or the bpftrace script in docs/) and replay it again.")
	}
	if !weighed {
		advice = append(advice, "Weigh by what is resident now: add --pid PID (or --smaps FILE) to join the outstanding set with smaps.")
	}
	advice = append(advice, "Startup mappings (libraries, thread stacks, arenas) are outstanding too: compare two traces of steady state, or use --at to cut the trace before shutdown.")
	return []finding.Finding{{
		ID:       "leaked-mappings",
		Severity: sev,
		Summary: fmt.Sprintf("%s during the trace and never released; the leading group, %s (%s), %s",
			madeWords(n, anon, commits, committed), members(top), groupWeight(top, weighed), who),
		Bytes:    anon + committed,
		Evidence: ev,
		Advice:   advice,
	}}
}

// madeWords says what the trace left: mappings, growth of older heaps.
func madeWords(n int, anon uint64, commits int, committed uint64) string {
	maps := fmt.Sprintf("%d anonymous %s (%s) were made", n, plural(n, "mapping", "mappings"), humanize.Bytes(anon))
	grew := fmt.Sprintf("%s was committed in heaps reserved before it (%d %s)", humanize.Bytes(committed), commits, plural(commits, "growth", "growths"))
	switch {
	case commits == 0:
		return maps
	case n == 0:
		return grew
	}
	return maps + " and " + grew
}

// members counts a group's members by what they are.
func members(g Group) string {
	maps := g.Count - g.Commits
	switch {
	case g.Commits == 0:
		return fmt.Sprintf("%d %s", maps, plural(maps, "mapping", "mappings"))
	case maps == 0:
		return fmt.Sprintf("%d %s of older heaps", g.Commits, plural(g.Commits, "growth", "growths"))
	}
	return fmt.Sprintf("%d %s and %d %s of older heaps", maps, plural(maps, "mapping", "mappings"), g.Commits, plural(g.Commits, "growth", "growths"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// groupWeight words what ranked a group: resident bytes when known.
func groupWeight(g Group, weighed bool) string {
	if weighed {
		return fmt.Sprintf("%s resident of %s mapped", humanize.Bytes(g.ResidentBytes), humanize.Bytes(g.Bytes))
	}
	return fmt.Sprintf("%s mapped, %s of it writable", humanize.Bytes(g.Bytes), humanize.Bytes(g.WritableAnonBytes))
}
