package pmap

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// parsedMapping is a Mapping as the parser left it, its sparse counters
// spelled out by name (present fields only), for the goldens.
type parsedMapping struct {
	Start, End string
	Perms      string
	Offset     string
	Dev        string
	Inode      uint64
	Name       string
	VmFlags    string
	Extra      []ExtraField `json:",omitempty"`
	Fields     []string
}

func parsedMappings(ms []Mapping) []parsedMapping {
	out := make([]parsedMapping, len(ms))
	for i := range ms {
		m := &ms[i]
		p := parsedMapping{fmt.Sprintf("%#x", m.Start), fmt.Sprintf("%#x", m.End), m.Perms, fmt.Sprintf("%#x", m.Offset), m.Dev, m.Inode, m.Name, m.VmFlags, m.Extra, nil}
		for f := Field(0); f < numFields; f++ {
			if v, ok := m.Value(f); ok {
				p.Fields = append(p.Fields, fmt.Sprintf("%s=%d", f, v))
			}
		}
		out[i] = p
	}
	return out
}

// TestParserGoldens: each smaps capture in fixtures parses to the mappings
// in testdata/golden (every field the kernel wrote, by name), so a faster
// parser can be checked to read the same captures the same way.
func TestParserGoldens(t *testing.T) {
	for _, name := range []string{"smaps/arenas.smaps", "smaps/mapper.smaps", "smaps/procfs-alertmanager.smaps", "jvm/g1-detail.smaps"} {
		t.Run(name, func(t *testing.T) {
			ms, err := ParseSmaps(golden.Fixture(t, name), name)
			if err != nil {
				t.Fatal(err)
			}
			golden.JSON(t, filepath.Base(name)+".parse.json", parsedMappings(ms))
		})
	}
}

// TestParserGoldenErrors: a real capture damaged by the test (cut inside a
// mapping, a header line spliced in, a counter's value made not a number)
// gives the error text in testdata/golden, naming input and line.
func TestParserGoldenErrors(t *testing.T) {
	b := golden.Text(t, "smaps/mapper.smaps")
	lines := strings.SplitAfter(b, "\n")
	cases := map[string]string{
		// cut after the third line: the first mapping has no VmFlags.
		"cut": strings.Join(lines[:3], ""),
		// the Rss line's number replaced by a word.
		"notnumber": strings.Replace(b, "Rss:", "Rss:  many", 1),
	}
	// spliced: the first VmFlags line dropped, so the next mapping's header
	// arrives inside the first mapping.
	for i, l := range lines {
		if strings.HasPrefix(l, "VmFlags:") {
			cases["spliced"] = strings.Join(lines[:i], "") + strings.Join(lines[i+1:], "")
			break
		}
	}
	got := map[string]string{}
	for name, in := range cases {
		ms, err := ParseSmaps(bytes.NewReader([]byte(in)), "mapper-"+name+".smaps")
		if err == nil {
			t.Errorf("%s: no error, %d mappings", name, len(ms))
			continue
		}
		got[name] = err.Error()
	}
	golden.JSON(t, "errors.json", got)
}
