package syscalltrace

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/memdiag/memdiag/internal/humanize"
)

// Formats lists the formats memdiag reads, as --format names them.
func Formats() []Format {
	return []Format{FormatStrace, FormatPerfTrace, FormatSysdig, FormatSysdigJSON, FormatBpftrace}
}

// ParseFormat reads a format's name; "" is FormatAuto.
func ParseFormat(s string) (Format, error) {
	return parseName(s, "format", FormatAuto, Formats())
}

// GroupBys lists the groupings, as --group-by names them.
func GroupBys() []GroupBy {
	return []GroupBy{GroupStack, GroupLeaf, GroupSize, GroupThread, GroupFlags}
}

// ParseGroupBy reads a grouping's name; "" is GroupAuto.
func ParseGroupBy(s string) (GroupBy, error) {
	return parseName(s, "grouping", GroupAuto, GroupBys())
}

func parseName[T ~string](s, what string, auto T, names []T) (T, error) {
	if T(s) == auto {
		return auto, nil
	}
	words := make([]string, len(names))
	for i, n := range names {
		if T(s) == n {
			return n, nil
		}
		words[i] = string(n)
	}
	return auto, fmt.Errorf("unknown %s %q: want %s", what, s, humanize.List(words, "or"))
}

// ParseTime reads a time as traces print it: seconds (12.5, the relative
// or epoch times of strace -r/-ttt, perf and sysdig) or a time of day
// HH:MM:SS[.frac] (strace -t/-tt), in seconds. A time of day out of range
// (12:75:00) is a typo, not a time.
func ParseTime(s string) (float64, bool) {
	if !strings.Contains(s, ":") {
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil && v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v)
	}
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.Atoi(parts[0])
	m, err2 := strconv.Atoi(parts[1])
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec >= 60 {
		return 0, false
	}
	return float64(h*3600+m*60) + sec, true
}
