package pmap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/iotest"
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
		// Read a byte at a time, every line straddles a refill and takes the
		// general path: the answer must not change.
		slow, slowErr := ParseSmaps(iotest.OneByteReader(bytes.NewReader(in)), "fuzz")
		if fmt.Sprint(err) != fmt.Sprint(slowErr) || !reflect.DeepEqual(ms, slow) {
			t.Fatalf("read whole: %v, %d mappings; a byte at a time: %v, %d mappings", err, len(ms), slowErr, len(slow))
		}
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
		// The classes partition the mappings: every mapping in one class,
		// the classes' sums the totals, and the anonymous split within
		// them.
		var mappings int
		var size, rss, anon uint64
		for _, c := range s.Classes {
			mappings += c.Mappings
			size += c.SizeBytes
			rss += c.Bytes(FieldRss)
			anon += c.Bytes(FieldAnonymous)
		}
		if mappings != s.Totals.Mappings || size != s.Totals.SizeBytes || rss != s.Totals.Bytes(FieldRss) || anon != s.Totals.Bytes(FieldAnonymous) {
			t.Fatalf("classes sum to %d mappings, %d B, Rss %d B, Anonymous %d B; totals %d, %d B, %d B, %d B",
				mappings, size, rss, anon, s.Totals.Mappings, s.Totals.SizeBytes, s.Totals.Bytes(FieldRss), s.Totals.Bytes(FieldAnonymous))
		}
		var split uint64
		for _, n := range AnonByClass(ms) {
			split += n
		}
		if split != anon {
			t.Fatalf("AnonByClass sums to %d B, the mappings' Anonymous to %d B", split, anon)
		}
	})
}
