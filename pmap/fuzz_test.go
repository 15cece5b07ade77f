package pmap

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseSmaps feeds arbitrary bytes to the parser and everything
// downstream of it. Seeds are the real captures in fixtures/smaps, whole and
// cut at arbitrary points. Run: go test ./pmap -fuzz FuzzParseSmaps
func FuzzParseSmaps(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "fixtures", "smaps", "*.smaps"))
	if len(files) == 0 {
		f.Fatal("no seed captures in fixtures/smaps")
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)/3+7])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ms, err := ParseSmaps(bytes.NewReader(in), "fuzz")
		if err != nil {
			if ms != nil {
				t.Fatalf("error %v came with %d mappings", err, len(ms))
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if len(ms) == 0 {
			t.Fatal("no error and no mappings")
		}
		Classify(ms, Hints{})
		_ = Validate(ms)
		s := Summarize(ms)
		if s.Totals.Mappings != len(ms) {
			t.Fatalf("summary counts %d mappings of %d", s.Totals.Mappings, len(ms))
		}
		for i := range ms {
			if ms[i].Class == "" || ms[i].Reason == "" {
				t.Fatalf("mapping %d left unclassified", i)
			}
		}
	})
}
