package memcg

import (
	"fmt"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldenErrors: a log with no report gives the error text in
// testdata/golden; the real OOM report with its usage line made a word is
// still a report (the kernel logs text users choose, so a line not of the
// kernel's shape is another line), its usage then unknown: the golden
// pins what it is read as.
func TestParserGoldenErrors(t *testing.T) {
	b := golden.Text(t, "cgroup/oom-v1.dmesg")
	got := map[string]string{}
	reps, err := ParseOOM(strings.NewReader(strings.Replace(b, "memory: usage 65536kB", "memory: usage manykB", 1)), "oom-v1-notnumber.dmesg")
	got["notnumber"] = errText(err)
	if err == nil {
		g := reps[0].Group()
		got["notnumber"] = fmt.Sprintf("no error: %d reports, the first's usage read %v, unknown because %s", len(reps), reps[0].HasUsage, g.UsageUnknown)
		if reps[0].HasUsage || g.UsageUnknown == "" {
			t.Errorf("a damaged usage line was read as usage %d B, limit %d B", g.UsageBytes, g.LimitBytes)
		}
	}
	reps, err = ParseOOM(strings.NewReader("[    1.0] no report here\n"), "none.dmesg")
	got["none"] = errText(err)
	if len(reps) != 0 {
		t.Errorf("a log with no report gave %d", len(reps))
	}
	golden.JSON(t, "errors.json", got)
}

func errText(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
