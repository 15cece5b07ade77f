// Command gentrace writes a synthetic but realistic strace -f -tt -T trace of
// a threaded program's memory calls, for benchmarks: balanced mmap/munmap
// churn across threads, a third of the calls split by other threads
// (<unfinished ...> / <... resumed>), mremap growth, madvise, and a small
// steady leak. With -k each call is followed by its stack, as strace -k
// prints it: one of a few dozen stacks of eight frames, as a program's
// allocation sites are. It prints the number of leaked mappings on stderr.
//
// Usage: go run ./bench/gentrace -size 1G [-k] > big.strace
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
)

func main() {
	size := flag.String("size", "100M", "approximate output size (K, M, G suffixes)")
	threads := flag.Int("threads", 8, "threads")
	seed := flag.Int64("seed", 1, "random seed")
	withStacks := flag.Bool("k", false, "follow each call with its stack (strace -k)")
	flag.Parse()
	limit, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer w.Flush()
	rng := rand.New(rand.NewSource(*seed))
	g := &gen{rng: rng, perThread: make([][]live, *threads), next: 0x7f0000000000}
	pending := make([]string, *threads) // a call split by another thread, waiting to resume
	var written int64
	var sec float64 = 3600
	write := func(s string) {
		n, _ := w.WriteString(s)
		written += int64(n)
	}
	stacks := makeStacks(rng)
	for written < limit {
		t := rng.Intn(*threads)
		tid := 1000 + t
		sec += 0.000013
		stamp := fmt.Sprintf("%d  %02d:%02d:%09.6f ", tid, int(sec)/3600, int(sec)/60%60, sec-float64(int(sec)/60*60))
		if pending[t] != "" {
			write(stamp + pending[t])
			pending[t] = ""
			continue
		}
		split := rng.Intn(3) == 0
		call, result := g.call(t, split, stamp)
		if *withStacks {
			// After the line that ends the call, before a madvise that follows.
			i := strings.IndexByte(result, '\n') + 1
			result = result[:i] + stacks[call[:3]][rng.Intn(len(stacks[call[:3]]))] + result[i:]
		}
		if split {
			write(stamp + call + " <unfinished ...>\n")
			name := call[:strings.IndexByte(call, '(')]
			pending[t] = "<... " + name + " resumed>" + result
			continue
		}
		write(stamp + call + result)
	}
	for t := range pending {
		if pending[t] != "" {
			write(fmt.Sprintf("%d  01:00:00.000000 %s", 1000+t, pending[t]))
		}
	}
	fmt.Fprintf(os.Stderr, "leaked mappings: %d (plus what each thread still held at the end)\n", g.leaks)
}

// live is a mapping a thread holds.
type live struct{ addr, size uint64 }

// gen is the address space the trace's calls act on.
type gen struct {
	rng       *rand.Rand
	perThread [][]live
	next      uint64 // where the next mapping goes
	leaks     int
}

// call picks thread t's next call, acts it out, and returns its text up
// to the result and the result line (with a madvise after an mmap that
// is not split, one time in ten).
func (g *gen) call(t int, split bool, stamp string) (call, result string) {
	rng := g.rng
	switch l := g.perThread[t]; {
	case len(l) > 64 || len(l) > 0 && rng.Intn(2) == 0: // a bounded working set per thread
		i := rng.Intn(len(l))
		m := l[i]
		g.perThread[t] = append(l[:i], l[i+1:]...)
		if rng.Intn(20) == 0 {
			newSize := m.size * 2
			call = fmt.Sprintf("mremap(%#x, %d, %d, MREMAP_MAYMOVE", m.addr, m.size, newSize)
			result = fmt.Sprintf(") = %#x <0.000011>\n", g.next)
			g.perThread[t] = append(g.perThread[t], live{g.next, newSize})
			g.next += newSize + 4096
			return call, result
		}
		return fmt.Sprintf("munmap(%#x, %d", m.addr, m.size), ") = 0 <0.000021>\n"
	}
	sz := uint64(16+rng.Intn(240)) * 4096
	addr := g.next
	g.next += sz + 4096
	call = fmt.Sprintf("mmap(NULL, %d, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0", sz)
	result = fmt.Sprintf(") = %#x <0.000009>\n", addr)
	if rng.Intn(5000) == 0 {
		g.leaks++ // never tracked: never unmapped
	} else {
		g.perThread[t] = append(g.perThread[t], live{addr, sz})
	}
	if !split && rng.Intn(10) == 0 {
		// released pages, mapping kept: after the mmap, same thread
		result += stamp + fmt.Sprintf("madvise(%#x, %d, MADV_DONTNEED) = 0 <0.000030>\n", addr, sz/2)
	}
	return call, result
}

// makeStacks returns, by a call's first three letters, the stacks it is
// made from: frame lines of libc, an allocator and the program.
func makeStacks(rng *rand.Rand) map[string][]string {
	stacks := map[string][]string{}
	for _, call := range []string{"mmap", "munmap", "mremap"} {
		for i := range 12 {
			var b strings.Builder
			fmt.Fprintf(&b, " > /usr/lib/x86_64-linux-gnu/libc.so.6(__%s+0x13) [0x%x]\n", call, 0x1019b3+len(call))
			fmt.Fprintf(&b, " > /usr/lib/x86_64-linux-gnu/libc.so.6(sysmalloc+0x%x) [0x%x]\n", 0x2a0+i, 0x9a2f0+i)
			for j := range 5 {
				fmt.Fprintf(&b, " > /opt/app/bin/server(worker_%d_step_%d+0x%x) [0x%x]\n", i, j, rng.Intn(4096), 0x400000+rng.Intn(1<<20))
			}
			b.WriteString(" > /usr/lib/x86_64-linux-gnu/libc.so.6(__libc_start_main+0x85) [0x27305]\n")
			stacks[call[:3]] = append(stacks[call[:3]], b.String())
		}
	}
	return stacks
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	}
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		return 0, fmt.Errorf("bad -size %q", s)
	}
	return n * mult, nil
}
