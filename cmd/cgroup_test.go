package cmd

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestOOMFromAFile reads the kernel's report of a real OOM kill
// (fixtures/capture-cgroup.sh): the victim, the breakdown summing to the
// usage at the kill, and the shmem nobody mapped as the first finding.
func TestOOMFromAFile(t *testing.T) {
	s, out, errOut := testStreams("", false, nil)
	if code := run(t, s, "oom", "../fixtures/cgroup/oom-v1.dmesg", "-o", "json"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var doc struct {
		Schema     string
		Version    int
		UsageBytes uint64 `json:"usage_bytes"`
		LimitBytes uint64 `json:"limit_bytes"`
		Breakdown  []struct{ Bytes uint64 }
		Killed     *struct{ Command string }
		Findings   []struct{ ID string }
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, p := range doc.Breakdown {
		sum += p.Bytes
	}
	if doc.Version != 1 || doc.LimitBytes != 64<<20 || sum != doc.UsageBytes || doc.Killed == nil || doc.Killed.Command != "hog" {
		t.Errorf("%+v (Σ %d)", doc, sum)
	}
	if len(doc.Findings) == 0 || doc.Findings[0].ID != "shmem-unmapped" {
		t.Errorf("findings %+v, want shmem-unmapped first", doc.Findings)
	}
}

func TestCgroupErrors(t *testing.T) {
	s, _, errOut := testStreams("", false, nil)
	if code := run(t, s, "cgroup", t.TempDir()); code != ExitError || !strings.Contains(errOut.String(), "neither memory.usage_in_bytes") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	s, _, errOut = testStreams("just a line\n", false, nil)
	if code := run(t, s, "oom", "-"); code != ExitError || !strings.Contains(errOut.String(), "-: no OOM report") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	if _, err := os.Stat("/proc/self/cgroup"); err == nil {
		s, out, errOut := testStreams("", false, nil)
		code := run(t, s, "cgroup", fmt.Sprint(os.Getpid()))
		if code != 0 && !strings.Contains(errOut.String(), "no memory cgroup") {
			t.Errorf("own cgroup: exit %d: %s", code, errOut)
		}
		if code == 0 && !strings.Contains(out.String(), "usage") {
			t.Errorf("own cgroup: %s", out)
		}
	}
}
