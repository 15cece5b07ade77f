package mallocinfo

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the log scanner, the XML decoder and
// the analysis: arenas' free bytes split into top and retained, an error
// names the input, and Parse reads the scan's first document the same way.
// Seeds are the real captures in fixtures/mallocinfo, whole
// and cut. Run: go test ./mallocinfo -fuzz FuzzParse -fuzzminimizetime 5s
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "mallocinfo", "*.*"))
	for _, file := range files {
		if filepath.Ext(file) == ".mallinfo2" {
			continue
		}
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("<malloc version=\"1\"><heap nr=\"0\"><sizes><size/></sizes></heap></malloc>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		se := NewSeries()
		th := DefaultThresholds(4)
		var first *Info
		err := Scan(bytes.NewReader(in), "fuzz", func(info *Info) error {
			if first == nil {
				first = info
			}
			s := Analyze(info)
			se.Add(s)
			for _, a := range s.Arenas {
				if a.TopBytes+a.RetainedFreeBytes != a.FreeBytes() {
					t.Fatalf("arena %d: top %d + retained %d ≠ free %d", a.Nr, a.TopBytes, a.RetainedFreeBytes, a.FreeBytes())
				}
			}
			_ = Findings(s, th, "fuzz")
			return nil
		})
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz") {
			t.Fatalf("error %q does not name the input", err)
		}
		// Parse reads the first document the scan gave, the same way.
		one, oneErr := Parse(bytes.NewReader(in), "fuzz")
		if first != nil && (oneErr != nil || !reflect.DeepEqual(one, first)) {
			t.Fatalf("Parse gave %+v, %v; the scan's first document was %+v", one, oneErr, first)
		}
		_ = se.Findings(th, "fuzz")
	})
}
