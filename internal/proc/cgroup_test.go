package proc

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCgroup(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []Cgroup
		err        string
	}{
		{"v2", "0::/user.slice/session-1.scope\n", []Cgroup{{Path: "/user.slice/session-1.scope"}}, ""},
		{"hybrid", "4:memory:/kubepods/pod1\n2:cpu,cpuacct:/\n1:name=systemd:/x\n0::/\n",
			[]Cgroup{{4, []string{"memory"}, "/kubepods/pod1"}, {2, []string{"cpu", "cpuacct"}, "/"}, {1, []string{"name=systemd"}, "/x"}, {0, nil, "/"}}, ""},
		{"colon in path", "0::/a:b\n", []Cgroup{{Path: "/a:b"}}, ""},
		{"empty", "", nil, ""},
		{"two fields", "0::/\nmemory:/x\n", nil, "cgroup:2: want hierarchy-ID:controllers:path"},
		{"bad id", "x:memory:/\n", nil, `cgroup:1: hierarchy ID "x"`},
		{"too many", strings.Repeat("0::/\n", maxCgroups+1), nil, "more than 1024 hierarchies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCgroup(strings.NewReader(tc.text), "cgroup")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestCgroupUnified(t *testing.T) {
	if !(Cgroup{Path: "/"}).Unified() || (Cgroup{HierarchyID: 4, Controllers: []string{"memory"}}).Unified() {
		t.Error("Unified is wrong")
	}
}

// FuzzParseCgroup is a round trip: what parses prints back, line by line,
// to text that parses to the same groups.
func FuzzParseCgroup(f *testing.F) {
	f.Add(string(readFixture(f, "mapper.cgroup")))
	f.Add("0::/\n")
	f.Add("4:memory:/a:b\n\n1:name=systemd:/\n")
	f.Fuzz(func(t *testing.T, text string) {
		gs, err := parseCgroup(strings.NewReader(text), "cgroup")
		if err != nil {
			if !strings.Contains(err.Error(), "cgroup") {
				t.Fatalf("error without the file's name: %v", err)
			}
			return
		}
		var b strings.Builder
		for _, g := range gs {
			fmt.Fprintf(&b, "%d:%s:%s\n", g.HierarchyID, strings.Join(g.Controllers, ","), g.Path)
		}
		again, err := parseCgroup(strings.NewReader(b.String()), "again")
		if err != nil {
			t.Fatalf("%q parsed, its print %q did not: %v", text, b.String(), err)
		}
		if d := cmp.Diff(gs, again); d != "" {
			t.Fatalf("round trip of %q (-first +again)\n%s", text, d)
		}
	})
}
