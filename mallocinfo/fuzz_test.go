package mallocinfo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the log scanner, the XML decoder and
// the analysis. Seeds are the real captures in fixtures/mallocinfo, whole
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
		err := Scan(bytes.NewReader(in), "fuzz", func(info *Info) error {
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
		if err != nil && err.Error() == "" {
			t.Fatal("empty error message")
		}
		_ = se.Findings(th, "fuzz")
	})
}
