package proc

import (
	"bytes"
	"strings"
	"testing"

	"github.com/memdiag/memdiag/internal/golden"
)

// TestParserGoldenErrors: the real /proc files of the mapper damaged by
// the test (a Uid line made words, a maps line cut in its addresses, a
// stat cut before its start time, a cgroup line without its colons) give
// the error texts in testdata/golden, naming file and line.
func TestParserGoldenErrors(t *testing.T) {
	status := string(readFixture(t, "mapper.status"))
	maps := string(readFixture(t, "mapper.maps"))
	stat := string(readFixture(t, "mapper.stat"))
	cgroup := string(readFixture(t, "mapper.cgroup"))
	got := map[string]string{}
	record := func(name string, err error) {
		if err == nil {
			got[name] = "no error"
			return
		}
		got[name] = err.Error()
	}
	uid := status[strings.Index(status, "Uid:"):]
	uid = uid[:strings.IndexByte(uid, '\n')]
	_, err := ParseStatus(strings.NewReader(strings.Replace(status, uid, "Uid:\tnobody\tnobody", 1)), "mapper-notnumber.status", 0)
	record("status-notnumber", err)
	second := strings.IndexByte(maps, '\n') + 1
	_, err = ParseMaps(strings.NewReader(maps[:second]+maps[second:second+10]+"\n"+maps[second:]), "mapper-cut.maps")
	record("maps-cut", err)
	_, _, err = ParseStartTime([]byte(stat[:strings.Index(stat, ")")+8]), "mapper-cut.stat")
	record("stat-cut", err)
	_, err = parseCgroup(bytes.NewReader([]byte(strings.Replace(cgroup, "8:pids:/", "8 pids /", 1))), "mapper-nocolons.cgroup")
	record("cgroup-nocolons", err)
	golden.JSON(t, "errors.json", got)
}
