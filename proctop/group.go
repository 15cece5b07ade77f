package proctop

import "sort"

// Totals is what a scan's processes add up to. Σ RSS counts a shared page
// once for every process that maps it; Σ PSS divides it among them, so it
// is what the processes use together — where every one had its PSS read.
type Totals struct {
	Processes int
	Threads   int
	RSSBytes  uint64
	SwapBytes uint64
	// AnonBytes and FileBytes are Σ RssAnon and Σ RssFile.
	AnonBytes, FileBytes uint64
	// ShmemBytes is Σ RssShmem: shared memory, counted per process.
	ShmemBytes uint64
	// PSSBytes is Σ PSS over the PSSProcesses processes whose
	// smaps_rollup was read (those over the cap were not).
	PSSBytes     uint64
	PSSProcesses int
}

// Totals adds up the scan's processes.
func (s *Scan) Totals() Totals {
	return totalOf(s.Processes)
}

func totalOf(ps []*Process) Totals {
	var t Totals
	for _, p := range ps {
		t.Processes++
		t.Threads += p.Threads
		t.AnonBytes += p.AnonBytes
		t.FileBytes += p.FileBytes
		t.RSSBytes += p.RSSBytes
		t.SwapBytes += p.SwapBytes
		t.ShmemBytes += p.ShmemBytes
		if p.Rollup != nil {
			t.PSSBytes += p.Rollup.PSS
			t.PSSProcesses++
		}
	}
	return t
}

// Group is the processes of one command name, added up.
type Group struct {
	Command string
	PIDs    []int
	Totals
}

// GroupByCommand adds up the scan's processes by command name (the 9
// processes of a PostgreSQL server as one row), largest Σ RSS + swap
// first.
func (s *Scan) GroupByCommand() []Group {
	by := map[string][]*Process{}
	var order []string
	for _, p := range s.Processes {
		if _, ok := by[p.Command]; !ok {
			order = append(order, p.Command)
		}
		by[p.Command] = append(by[p.Command], p)
	}
	groups := make([]Group, 0, len(order))
	for _, c := range order {
		g := Group{Command: c, Totals: totalOf(by[c])}
		for _, p := range by[c] {
			g.PIDs = append(g.PIDs, p.PID)
		}
		sort.Ints(g.PIDs)
		groups = append(groups, g)
	}
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := groups[i].RSSBytes+groups[i].SwapBytes, groups[j].RSSBytes+groups[j].SwapBytes
		if a != b {
			return a > b
		}
		return groups[i].Command < groups[j].Command
	})
	return groups
}
