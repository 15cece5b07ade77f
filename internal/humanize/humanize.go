// Package humanize formats sizes for people. It is the one implementation
// behind every human-readable size memdiag prints, in reports and in the
// findings' sentences alike.
package humanize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
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

// ParseBytes reads a byte count as people write it: "1048576", "64MiB",
// "1.5GiB", "512k". Units are binary (k = KiB); a bare number is bytes.
func ParseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 64MiB, 1.5GiB, 4096)", s)
	}
	var mult float64
	switch strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "b")) {
	case "":
		mult = 1
	case "k", "ki":
		mult = 1 << 10
	case "m", "mi":
		mult = 1 << 20
	case "g", "gi":
		mult = 1 << 30
	case "t", "ti":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KiB, MiB, GiB, TiB)", s, unit)
	}
	if b := v * mult; b < float64(math.MaxUint64) {
		return uint64(b), nil
	}
	return 0, fmt.Errorf("%q is larger than 16 EiB", s)
}

// Plural picks the word for n things: one for exactly one, else many.
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// List joins words as a sentence does: "a", "a and b", "a, b and c", with
// conj ("and", "or") before the last.
func List(words []string, conj string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " " + conj + " " + words[len(words)-1]
}
