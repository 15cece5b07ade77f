package explain

import (
	"bytes"
	"os"
	"testing"
)

// FuzzSnapshot: whatever a snapshot file holds, reading it fails cleanly or
// yields inputs whose attribution still partitions RSS exactly.
func FuzzSnapshot(f *testing.F) {
	if b, err := os.ReadFile("../fixtures/demo/story1.snapshot.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"schema":"memdiag.snapshot/v1","rss_bytes":105,"inputs":{"classes":[{"class":"anon","rss_bytes":100},{"class":"gpu","rss_bytes":5}],` +
		`"jvm":{"heap_committed_bytes":1000,"has_nmt":true,"nmt":[{"name":"GC","malloc_bytes":7,"mmap_committed_bytes":9,"mmap_resident_bytes":3}]},` +
		`"malloc":{"retained_free_bytes":40,"in_use_bytes":30},"trace":{"count":1,"anon_resident_bytes":20}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ReadSnapshot(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		r := Attribute(&s.Inputs)
		var sum uint64
		for _, e := range r.Attribution {
			sum += e.Bytes
		}
		if sum != r.RSSBytes {
			t.Fatalf("categories sum to %d, RSS %d", sum, r.RSSBytes)
		}
	})
}
