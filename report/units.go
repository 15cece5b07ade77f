// Package report renders memdiag's results: aligned text tables (styled with
// lipgloss on a terminal, plain when piped), markdown, and JSON. Every human
// size in memdiag's output is formatted here.
package report

import (
	"fmt"
	"strconv"
)

// Bytes formats n with binary units for a human: "0 B", "512 B", "4.0 KiB",
// "1.5 MiB", "12.9 GiB". Exact figures belong in JSON, not here.
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

// Percent formats part/whole as "12.3 %", or "-" when whole is 0.
func Percent(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(part)/float64(whole))
}

// Hex formats an address or offset as the JSON contract has it: "0x7f3ec4000000".
func Hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }
