// Package humanize formats sizes for people. It is the one implementation
// behind every human-readable size memdiag prints, in reports and in the
// findings' sentences alike.
package humanize

import (
	"fmt"
	"strconv"
)

// Bytes formats n with binary units: "0 B", "512 B", "4.0 KiB", "1.5 MiB",
// "12.9 GiB". Exact figures belong in JSON, not here.
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
