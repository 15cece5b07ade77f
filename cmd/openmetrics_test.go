package cmd

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestOpenMetricsParses: what each command writes with -o openmetrics is
// accepted whole by the Prometheus text parser that node_exporter's
// textfile collector uses. One rejected line drops the whole file, and a
// sample with a label twice is rejected: cgroup's findings once carried
// `id` for the cgroup and again for the finding.
func TestOpenMetricsParses(t *testing.T) {
	for _, args := range [][]string{
		{"cgroup", "../fixtures/cgroup/v2"},
		{"explain", "--snapshot", "../fixtures/demo/story1.snapshot.json"},
		{"top"},
	} {
		s, out, errOut := testStreams("", false, nil)
		if code := run(t, s, append(args, "-o", "openmetrics")...); code != 0 {
			t.Fatalf("memdiag %s: exit %d: %s", strings.Join(args, " "), code, errOut)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(out.String()))
		if err != nil {
			t.Errorf("memdiag %s -o openmetrics: the Prometheus text parser refuses it: %v\n%s", strings.Join(args, " "), err, out)
			continue
		}
		if len(families) < 3 {
			t.Errorf("memdiag %s -o openmetrics: %d metric families parsed, want the page's", strings.Join(args, " "), len(families))
		}
	}
}
