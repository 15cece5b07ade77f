// Package report renders memdiag's results: aligned text tables (styled with
// lipgloss on a terminal, plain when piped), markdown, and JSON. Every human
// size in memdiag's output is formatted here.
package report

import (
	"fmt"
	"strconv"

	"github.com/memdiag/memdiag/internal/humanize"
)

// Bytes formats n with binary units for a human: "0 B", "4.0 KiB",
// "12.9 GiB". Exact figures belong in JSON, not here.
func Bytes(n uint64) string { return humanize.Bytes(n) }

// Percent formats part/whole as "12.3 %", or "-" when whole is 0.
func Percent(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*float64(part)/float64(whole))
}

// Hex formats an address or offset as the JSON contract has it: "0x7f3ec4000000".
func Hex(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }
