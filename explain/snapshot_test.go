package explain

import (
	"strings"
	"testing"
)

func TestReadSnapshotRejects(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"not JSON", `{"schema":`, "not a memdiag snapshot"},
		{"another schema", `{"schema":"memdiag.snapshot/v0"}`, `want "memdiag.snapshot/v1"`},
		{"edited rss", `{"schema":"memdiag.snapshot/v1","rss_bytes":10,"inputs":{"classes":[{"class":"anon","rss_bytes":7}]}}`, "add up to 7, but rss_bytes is 10"},
		// Two halves of 2^64 wrap to 0: without the check the RSS would read 5 B.
		{"overflow", `{"schema":"memdiag.snapshot/v1","rss_bytes":5,"inputs":{"classes":[{"class":"anon","rss_bytes":9223372036854775808},` +
			`{"class":"file-code","rss_bytes":9223372036854775808},{"class":"shmem","rss_bytes":5}]}}`, "overflow 64 bits"},
		{"too large", `{"schema":"` + strings.Repeat("x", MaxSnapshotBytes) + `"}`, "larger than the limit of 4 MiB: not a memdiag snapshot"},
		// The message quotes a wrong schema, not a megabyte of it.
		{"long schema", `{"schema":"` + strings.Repeat("x", 1<<20) + `"}`, `schema "` + strings.Repeat("x", 64) + `…", want`},
	} {
		_, err := ReadSnapshot(strings.NewReader(tc.doc), "snap.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "snap.json: ") {
			t.Errorf("%s: %v, want an error naming snap.json with %q", tc.name, err, tc.want)
		}
	}
	s, err := ReadSnapshot(strings.NewReader(`{"schema":"memdiag.snapshot/v1","rss_bytes":12,"inputs":{"classes":[{"class":"anon","rss_bytes":7},{"class":"heap","rss_bytes":5}]}}`), "ok.json")
	if err != nil || s.RSSBytes != 12 {
		t.Errorf("a consistent snapshot: %v", err)
	}
}
