package pmap

import (
	"fmt"
	"sort"
	"strings"
)

// Class says what a mapping holds. Each mapping gets exactly one, with a
// Reason. Other packages add classes from their own evidence (a JVM's heap
// range, for one) through Hints.Regions.
type Class string

// The classes Classify assigns from the address space alone.
const (
	ClassHeap        Class = "heap"         // the brk heap, [heap]: glibc's main arena
	ClassStack       Class = "stack"        // the main thread's stack, [stack]
	ClassThreadStack Class = "thread-stack" // another thread's stack
	ClassGlibcArena  Class = "glibc-arena"  // a non-main glibc malloc arena heap, or its reserve
	ClassGoHeap      Class = "go-heap"      // a Go program's heap arenas (its goroutines' stacks among them)
	ClassV8Heap      Class = "v8-heap"      // a Node.js program's V8 heap pages and JIT code space
	ClassGuard       Class = "guard"        // no access (---p): guard pages and reserved gaps
	ClassFileCode    Class = "file-code"    // executable file mapping: program and library text
	ClassFileData    Class = "file-data"    // other file mappings: rodata, data, mmapped files
	ClassShmem       Class = "shmem"        // shared memory: memfd, /dev/zero, SysV, tmpfs, shared anonymous
	ClassKernel      Class = "kernel"       // [vdso], [vvar], [vsyscall]: provided by the kernel
	ClassAnon        Class = "anon"         // any other anonymous memory: mmapped malloc chunks, runtimes' heaps
)

// Classes lists the classes Classify assigns, in the order of the table in
// docs/pmap.md.
func Classes() []Class {
	return []Class{ClassHeap, ClassStack, ClassThreadStack, ClassGlibcArena, ClassGoHeap, ClassV8Heap, ClassGuard,
		ClassFileCode, ClassFileData, ClassShmem, ClassKernel, ClassAnon}
}

// Glibc's HEAP_MAX_SIZE on 64-bit: each non-main arena heap is reserved at
// this size and alignment (2 × DEFAULT_MMAP_THRESHOLD_MAX).
const arenaHeapBytes = 64 << 20

// Region is a range of addresses whose class is known from evidence outside
// smaps, such as the Java heap range that GC.heap_info reports. A mapping
// lying wholly inside a Region takes its class and reason.
type Region struct {
	Start, End uint64
	Class      Class
	Reason     string
}

// Hints carries evidence from the live process (or other sources) that
// smaps alone does not hold.
type Hints struct {
	// StackPointers maps a thread's user stack pointer to its thread id,
	// from /proc/<pid>/task/<tid>/syscall. The mapping holding it is that
	// thread's stack.
	StackPointers map[uint64]int
	// MainTID is the main thread's id (the process id); its stack is [stack].
	MainTID int
	// Regions are known ranges; they win over every rule here.
	Regions []Region
	// GoProgram says the process is a Go program: its heap arenas are
	// reserved 64 MiB-aligned, glibc's arena geometry, and are go-heap;
	// only where it maps glibc too (cgo) is a small heap with glibc's
	// reserve, holding no stack pointer, taken for glibc's.
	GoProgram bool
}

// Classify sets Class and Reason on every mapping. ms must be in address
// order, as the kernel writes smaps. The rules, first match wins:
//  1. a Region from Hints covers the mapping
//  2. kernel pseudo-mappings ([vdso], [vvar], [vsyscall], …)
//  3. [heap]; [stack]; [stack:TID] (kernels before 4.5)
//  4. glibc arena heaps: anonymous private rw-p starting on a 64 MiB
//     boundary, with their ---p reserve up to the next 64 MiB boundary; a
//     reserve-less multiple of 64 MiB only when this process shows the
//     reserved pattern elsewhere too
//  5. shared memory (memfd, /dev/zero, SysV, /dev/shm, shared anonymous)
//  6. ---p: guard
//  7. file mappings: file-code when executable, else file-data
//  8. anonymous rw-p holding a live thread's stack pointer: thread-stack
//  9. anonymous rw-p directly above a small ---p guard (the pthread layout):
//     thread-stack, by pattern
//  10. anything else: anon
func Classify(ms []Mapping, h Hints) {
	regions := append([]Region(nil), h.Regions...)
	sort.Slice(regions, func(i, j int) bool { return regions[i].Start < regions[j].Start })
	sps := make([]uint64, 0, len(h.StackPointers))
	for sp := range h.StackPointers {
		sps = append(sps, sp)
	}
	sort.Slice(sps, func(i, j int) bool { return sps[i] < sps[j] })

	for i := range ms {
		ms[i].Class, ms[i].Reason = "", ""
	}
	if h.GoProgram {
		markGoHeap(ms, sps)
	} else {
		markArenas(ms)
	}
	if mapsNode(ms) {
		markV8Heap(ms)
	}
	for i := range ms {
		m := &ms[i]
		if r, ok := findRegion(regions, m); ok {
			m.Class, m.Reason = r.Class, r.Reason
			continue
		}
		if m.Class == ClassGlibcArena || m.Class == ClassGoHeap || m.Class == ClassV8Heap {
			continue
		}
		m.Class, m.Reason = classifyAlone(ms, i, sps, h)
	}
}

// markArenas finds glibc arena heaps. A heap is mmapped 64 MiB-aligned as
// PROT_NONE and made rw-p from its start as the arena grows (glibc
// malloc/arena.c new_heap, grow_heap), so its shape is rw-p from a 64 MiB
// boundary, then ---p to the next one. The kernel merges adjacent heaps of
// one arena, so a VMA may span several.
func markArenas(ms []Mapping) {
	seenReserved := false
	var fullCandidates []int
	for i := range ms {
		m := &ms[i]
		if !isPlainAnon(m) || m.Perms != "rw-p" || m.Start%arenaHeapBytes != 0 {
			continue
		}
		if i+1 < len(ms) {
			r := &ms[i+1]
			if isPlainAnon(r) && r.Perms == "---p" && r.Start == m.End && r.End%arenaHeapBytes == 0 &&
				r.End-r.Start < arenaHeapBytes && m.End%arenaHeapBytes != 0 {
				heaps := (r.End - m.Start) / arenaHeapBytes
				m.Class = ClassGlibcArena
				m.Reason = fmt.Sprintf("anonymous rw-p from a 64 MiB boundary with a ---p reserve to the next (glibc arena heap%s)", plural(heaps, " ×%d, merged"))
				r.Class = ClassGlibcArena
				r.Reason = fmt.Sprintf("---p reserve of the glibc arena heap at %#x, not yet grown into", m.Start)
				seenReserved = true
				continue
			}
		}
		if m.Len()%arenaHeapBytes == 0 {
			fullCandidates = append(fullCandidates, i)
		}
	}
	if seenReserved {
		for _, i := range fullCandidates {
			m := &ms[i]
			heaps := m.Len() / arenaHeapBytes
			m.Class = ClassGlibcArena
			m.Reason = fmt.Sprintf("anonymous rw-p, 64 MiB-aligned, a multiple of 64 MiB (fully grown glibc arena heap%s; this process has reserved arena heaps too)", plural(heaps, " ×%d, merged"))
		}
	}
}

// markGoHeap finds a Go program's heap: Go reserves it in 64 MiB arenas,
// aligned to 64 MiB, as PROT_NONE, and maps read-write what it uses
// (runtime/malloc.go), so a run of adjacent anonymous mappings, rw-p and
// ---p, from one 64 MiB boundary to another is its heap. Goroutine stacks
// are carved from the same spans: a thread's stack pointer inside one does
// not make it a stack. A cgo program also maps glibc arena heaps of that
// geometry, which always start read-write at the boundary: a run that does,
// no larger than one heap, with no stack pointer in it, is left to
// markArenas' reading.
func markGoHeap(ms []Mapping, sps []uint64) {
	glibc := mapsGlibc(ms)
	if glibc {
		markArenas(ms)
	}
	for i := 0; i < len(ms); {
		j := i
		rw, sp := uint64(0), false
		for ; j < len(ms) && isPlainAnon(&ms[j]) && (ms[j].Perms == "rw-p" || ms[j].Perms == "---p") && (j == i || ms[j].Start == ms[j-1].End); j++ {
			if ms[j].Perms == "rw-p" {
				rw += ms[j].Len()
				sp = sp || holdsStackPointer(sps, &ms[j])
			}
		}
		if j == i {
			i++
			continue
		}
		aligned := ms[i].Start%arenaHeapBytes == 0 && ms[j-1].End%arenaHeapBytes == 0
		glibcShaped := glibc && ms[i].Perms == "rw-p" && rw <= arenaHeapBytes && !sp
		if aligned && rw > 0 && !glibcShaped {
			for k := i; k < j; k++ {
				ms[k].Class, ms[k].Reason = ClassGoHeap, "anonymous rw-p in a Go program's 64 MiB-aligned reservation: the Go runtime's heap arenas (goroutine stacks included)"
				if ms[k].Perms == "---p" {
					ms[k].Reason = "---p in a Go program's 64 MiB-aligned reservation: Go heap arena space not yet in use"
				}
			}
		}
		i = j
	}
}

// V8 (x86-64 Linux) places its heap at random hints below 2^46
// (base::OS::GetRandomMmapAddr masks them with 0x3FFFFFFFF000), far below
// where the kernel puts mmap(NULL, …), and in chunks aligned to its 256 KiB
// page (MemoryChunk::kAlignment): new, old and large-object space alike.
const (
	v8HintLimit = 1 << 46
	v8PageBytes = 256 << 10
)

// markV8Heap finds a Node.js program's V8 heap: anonymous pages (each
// mmapped with a ---p remainder beside it) starting on a 256 KiB boundary
// below V8's hint limit, and its JIT code space, the only anonymous
// read-write-execute memory a Node.js process maps. A mapping that
// continues a file mapping (a non-PIE binary's bss) is not one.
func markV8Heap(ms []Mapping) {
	for i := range ms {
		m := &ms[i]
		if !isPlainAnon(m) || m.Class != "" || m.Perms[:3] == "---" || m.Shared() {
			continue
		}
		if m.Perms == "rwxp" {
			m.Class, m.Reason = ClassV8Heap, "anonymous rwxp in a Node.js process: V8's code space (JIT-compiled code)"
			continue
		}
		continuesFile := i > 0 && !ms[i-1].Anonymous() && ms[i-1].End == m.Start
		if m.Start < v8HintLimit && m.Start%v8PageBytes == 0 && !continuesFile {
			m.Class, m.Reason = ClassV8Heap, "anonymous, 256 KiB-aligned below 2^46 in a Node.js process: V8 heap pages (where V8 places them)"
		}
	}
}

// mapsNode reports whether the process runs Node.js: its executable (node,
// nodejs) or libnode is mapped.
func mapsNode(ms []Mapping) bool {
	for i := range ms {
		if ms[i].Anonymous() || ms[i].Perms[2] != 'x' {
			continue
		}
		base := ms[i].Name[strings.LastIndexByte(ms[i].Name, '/')+1:]
		if base == "node" || base == "nodejs" || strings.HasPrefix(base, "libnode.so") {
			return true
		}
	}
	return false
}

// mapsGlibc reports whether glibc's libc.so.6 is among the mappings.
func mapsGlibc(ms []Mapping) bool {
	for i := range ms {
		if strings.HasSuffix(ms[i].Name, "/libc.so.6") {
			return true
		}
	}
	return false
}

// holdsStackPointer reports whether a thread's stack pointer lies in m.
func holdsStackPointer(sps []uint64, m *Mapping) bool {
	j := sort.Search(len(sps), func(j int) bool { return sps[j] >= m.Start })
	return j < len(sps) && sps[j] < m.End
}

func plural(n uint64, format string) string {
	if n <= 1 {
		return ""
	}
	return fmt.Sprintf(format, n)
}

// isPlainAnon reports an anonymous mapping with no name: what mmap(NULL, …,
// MAP_PRIVATE|MAP_ANONYMOUS) makes.
func isPlainAnon(m *Mapping) bool { return m.Inode == 0 && m.Name == "" }

func findRegion(regions []Region, m *Mapping) (Region, bool) {
	i := sort.Search(len(regions), func(i int) bool { return regions[i].End > m.Start })
	for ; i < len(regions) && regions[i].Start < m.End; i++ {
		if regions[i].Start <= m.Start && m.End <= regions[i].End {
			return regions[i], true
		}
	}
	return Region{}, false
}

// A pthread stack is one mmap: guard (PROT_NONE, a page by default) below
// the stack. Guards larger than this are not thread guards.
const maxGuardBytes = 1 << 20

func classifyAlone(ms []Mapping, i int, sps []uint64, h Hints) (Class, string) {
	m := &ms[i]
	name := m.Name
	switch {
	case name == "[vdso]" || name == "[vvar]" || name == "[vvar_vclock]" || name == "[vsyscall]" || name == "[uprobes]" || name == "[sigpage]" || name == "[vectors]":
		return ClassKernel, "kernel-provided " + name
	case name == "[heap]":
		return ClassHeap, "named [heap]: the brk heap (glibc main arena)"
	case name == "[stack]":
		return ClassStack, "named [stack]: the main thread's stack"
	case strings.HasPrefix(name, "[stack:"):
		return ClassThreadStack, "named " + name + " by the kernel (before Linux 4.5)"
	case strings.HasPrefix(name, "[anon:stack_and_tls:"):
		return ClassThreadStack, "named " + name + " by the C library"
	}
	if reason, ok := shmemReason(m); ok {
		return ClassShmem, reason
	}
	if m.Perms[:3] == "---" {
		return ClassGuard, "no access (---p): guard or reserved address space"
	}
	if !m.Anonymous() {
		if m.Perms[2] == 'x' {
			return ClassFileCode, "executable file mapping"
		}
		if m.Shared() {
			return ClassFileData, "shared mapping of a file (page cache)"
		}
		return ClassFileData, "file mapping, not executable"
	}
	if m.Perms == "rw-p" {
		if tid, ok := stackPointerIn(sps, m, h.StackPointers); ok {
			if tid == h.MainTID {
				return ClassStack, fmt.Sprintf("holds the stack pointer of the main thread %d", tid)
			}
			return ClassThreadStack, fmt.Sprintf("holds the stack pointer of thread %d", tid)
		}
		if i > 0 {
			g := &ms[i-1]
			if isPlainAnon(g) && g.Perms == "---p" && g.End == m.Start && g.Len() <= maxGuardBytes && g.Class != ClassGlibcArena {
				return ClassThreadStack, fmt.Sprintf("anonymous rw-p directly above a %s ---p guard (pthread stack layout)", humanKiB(g.Len()))
			}
		}
	}
	if strings.HasPrefix(name, "[anon:") {
		return ClassAnon, "anonymous, named by the process with PR_SET_VMA_ANON_NAME"
	}
	return ClassAnon, "anonymous memory not matched by any other rule"
}

func stackPointerIn(sps []uint64, m *Mapping, tids map[uint64]int) (int, bool) {
	j := sort.Search(len(sps), func(j int) bool { return sps[j] >= m.Start })
	if j < len(sps) && sps[j] < m.End {
		return tids[sps[j]], true
	}
	return 0, false
}

func shmemReason(m *Mapping) (string, bool) {
	name := m.Name
	switch {
	case strings.HasPrefix(name, "/memfd:"):
		return "memfd (memfd_create): shmem-backed", true
	case strings.HasPrefix(name, "/dev/zero"):
		return "shared mapping of /dev/zero: shmem-backed", true
	case strings.HasPrefix(name, "/SYSV"):
		return "System V shared memory segment", true
	case strings.HasPrefix(name, "/dev/shm/"):
		return "POSIX shared memory in /dev/shm (tmpfs)", true
	case strings.HasPrefix(name, "[anon_shmem:"):
		return "shared anonymous memory named by the process", true
	case m.Shared() && m.Anonymous():
		return "shared anonymous mapping: shmem-backed", true
	}
	return "", false
}

func humanKiB(n uint64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
