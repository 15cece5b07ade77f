package syscalltrace

import (
	"strings"
	"testing"
)

func TestParseNames(t *testing.T) {
	for _, f := range append(Formats(), FormatAuto) {
		if got, err := ParseFormat(string(f)); err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %q, %v", f, got, err)
		}
	}
	for _, g := range append(GroupBys(), GroupAuto) {
		if got, err := ParseGroupBy(string(g)); err != nil || got != g {
			t.Errorf("ParseGroupBy(%q) = %q, %v", g, got, err)
		}
	}
	if _, err := ParseFormat("ltrace"); err == nil || !strings.Contains(err.Error(), "strace, perf-trace, sysdig, sysdig-json or bpftrace") {
		t.Errorf("ParseFormat(ltrace): %v, want the formats named", err)
	}
	if _, err := ParseGroupBy("Stack"); err == nil {
		t.Error("ParseGroupBy is exact: Stack is not stack")
	}
}

func TestParseTime(t *testing.T) {
	for in, want := range map[string]float64{"12.5": 12.5, "1700000000.25": 1700000000.25, "01:02:03.5": 3723.5, "23:59:59.999999": 86399.999999, "0": 0} {
		if got, ok := ParseTime(in); !ok || got != want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"yesterday", "99:99", "12:75:00", "24:00:00", "5s", "-1", "NaN", "Inf", "1:2:3:4", ""} {
		if got, ok := ParseTime(in); ok {
			t.Errorf("ParseTime(%q) = %v, want refused", in, got)
		}
	}
}
