package cmd

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/testprog"
)

// TestTopGroupsSharedMemory: four processes that map the same 64 MiB of
// shared memory. Grouped by command they are one row whose Σ RSS counts
// the memory four times and whose Σ PSS once; the table says that Σ RSS
// overcounts, and by how much.
func TestTopGroupsSharedMemory(t *testing.T) {
	p := testprog.Start(t, testprog.Build(t, "sharer"), "4", "64")
	var pids int
	for _, l := range p.Lines {
		if strings.HasPrefix(l, "pid ") {
			pids++
		}
	}
	if pids != 4 {
		t.Fatalf("sharer printed %q", p.Lines)
	}
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "top", "--group-by", "comm", "--deep", "-o", "json"); code != 0 {
		t.Fatalf("top: exit %d: %s", code, errOut)
	}
	var doc struct {
		Totals struct {
			RSSBytes float64 `json:"rss_bytes"`
		} `json:"totals"`
		Groups []struct {
			Command  string  `json:"command"`
			PIDs     []int   `json:"pids"`
			RSSBytes float64 `json:"rss_bytes"`
			PSSBytes float64 `json:"pss_bytes"`
			Shmem    float64 `json:"shmem_bytes"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range doc.Groups {
		if g.Command != "sharer" {
			continue
		}
		found = true
		const mib = 1 << 20
		if len(g.PIDs) != 4 || g.Shmem < 4*60*mib || g.RSSBytes < 4*60*mib || g.PSSBytes > 80*mib || g.PSSBytes < 60*mib {
			t.Errorf("sharer group %+v: want 4 processes, shmem and RSS ~4 × 64 MiB, PSS ~64 MiB", g)
		}
	}
	if !found {
		t.Fatalf("no sharer group in %d groups", len(doc.Groups))
	}
	// The sharers only: the host's other processes (a test of another
	// package holding gigabytes, on a loaded CI machine) would hide the
	// overcount below its 10 % threshold.
	s, out, errOut = testStreams("", false, nil)
	if code := run(t, s, "top", "--group-by", "comm", "--deep", "--name", "sharer"); code != 0 || !strings.Contains(out.String(), "counts every shared page once per process") {
		t.Errorf("top table: exit %d, %s\n%s", code, errOut, out)
	}
}
