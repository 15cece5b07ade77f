package elfinfo

import (
	"bytes"
	"os"
	"testing"
)

// FuzzSectionNames: the Go check reads the target's executable, which its
// user writes: any bytes give names or an error, never a panic, and never
// a read beyond the bounds.
func FuzzSectionNames(f *testing.F) {
	if self, err := os.ReadFile("/proc/self/exe"); err == nil && len(self) > 0 {
		f.Add(self[:min(len(self), 1<<16)])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := SectionNames(bytes.NewReader(b))
		if err == nil && len(names) > maxSections {
			t.Fatalf("%d names, more than the %d sections allowed", len(names), maxSections)
		}
	})
}

func TestSectionNamesOfThisBinary(t *testing.T) {
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := SectionNames(f)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range names {
		found = found || n == ".go.buildinfo"
	}
	if !found {
		t.Errorf("no .go.buildinfo among this Go test binary's sections %v", names)
	}
}
