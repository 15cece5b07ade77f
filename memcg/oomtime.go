package memcg

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/memdiag/memdiag/internal/proc"
)

// BootTime reads when the machine booted: btime in /proc/stat (seconds
// since the epoch; see proc_stat(5)).
func BootTime(fsys proc.FS) (time.Time, error) {
	path := fsys.Path("stat")
	f, err := os.Open(path)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			s, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("%s: btime %q: %w", path, v, err)
			}
			return time.Unix(s, 0), nil
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", path, err)
	}
	return time.Time{}, fmt.Errorf("%s: no btime line", path)
}

// WallTime says when r's kill happened by the wall clock, and how that
// is known: the time journalctl printed, or, for a log of this boot
// (boot not zero), the boot time plus the kernel's timestamp — which
// does not count time suspended, so a machine that slept since reads
// early. ok is false when neither is there (a saved dmesg: the kernel's
// timestamps count from a boot the file does not date).
func (r *OOMReport) WallTime(boot time.Time, now time.Time) (t time.Time, how string, ok bool) {
	if r.Clock != "" {
		if t, ok := parseJournalClock(r.Clock, now); ok {
			return t, "as the log printed it", true
		}
	}
	if boot.IsZero() || r.Time == "" {
		return time.Time{}, "", false
	}
	secs, err := strconv.ParseFloat(r.Time, 64)
	if err != nil || secs < 0 {
		return time.Time{}, "", false
	}
	return boot.Add(time.Duration(secs * float64(time.Second))), "boot time (/proc/stat btime) + the kernel's timestamp; time suspended is not counted", true
}

// parseJournalClock reads journalctl's short ("Dec 03 11:00:00", local
// time, no year: the latest such date not after now) or short-iso
// ("2026-12-03T11:00:00+0100") stamp.
func parseJournalClock(s string, now time.Time) (time.Time, bool) {
	for _, layout := range []string{"2006-01-02T15:04:05-0700", "2006-01-02T15:04:05.999999-0700", time.RFC3339Nano, "2006-01-02T15:04:05,999999-07:00", "2006-01-02T15:04:05,999999-0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	// dmesg -T: local time, from the boot time, so it drifts by the time
	// the machine slept.
	if t, err := time.ParseInLocation("Mon Jan _2 15:04:05 2006", s, now.Location()); err == nil {
		return t, true
	}
	for _, layout := range []string{"Jan 02 15:04:05", "Jan _2 15:04:05", "Jan 02 15:04:05.999999", "Jan _2 15:04:05.999999"} {
		t, err := time.ParseInLocation(layout, s, now.Location())
		if err != nil {
			continue
		}
		t = t.AddDate(now.Year(), 0, 0)
		if t.After(now.Add(24 * time.Hour)) {
			t = t.AddDate(-1, 0, 0)
		}
		return t, true
	}
	return time.Time{}, false
}
