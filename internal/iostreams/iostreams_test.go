package iostreams

import (
	"runtime/debug"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestTableWidth decides as ps does: --wide none, then $COLUMNS (at least
// 40), then the terminal's width; a pipe is never cut.
func TestTableWidth(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    Streams
		wide bool
		want int
	}{
		{"pipe", Streams{}, false, 0},
		{"terminal", Streams{OutIsTTY: true, OutWidth: 100}, false, 100},
		{"wide", Streams{OutIsTTY: true, OutWidth: 100}, true, 0},
		{"COLUMNS", Streams{Getenv: env(map[string]string{"COLUMNS": "120"})}, false, 120},
		{"COLUMNS too narrow", Streams{Getenv: env(map[string]string{"COLUMNS": "10"})}, false, 40},
		{"COLUMNS not a number", Streams{OutIsTTY: true, OutWidth: 90, Getenv: env(map[string]string{"COLUMNS": "wide"})}, false, 90},
	} {
		if got := tc.s.TableWidth(tc.wide); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

// TestColorEnabled: colour only on a terminal, never with --no-color or
// a non-empty NO_COLOR.
func TestColorEnabled(t *testing.T) {
	tty := Streams{OutIsTTY: true}
	if !tty.ColorEnabled(false) {
		t.Error("no colour on a terminal")
	}
	if tty.ColorEnabled(true) {
		t.Error("colour despite --no-color")
	}
	if (&Streams{}).ColorEnabled(false) {
		t.Error("colour on a pipe")
	}
	noColor := Streams{OutIsTTY: true, Getenv: env(map[string]string{"NO_COLOR": "1"})}
	if noColor.ColorEnabled(false) {
		t.Error("colour despite NO_COLOR")
	}
}

// TestSoftMemoryLimit sets the limit and restores it, and leaves a
// GOMEMLIMIT the user set alone.
func TestSoftMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	restore := (&Streams{}).SoftMemoryLimit(64 << 20)
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Errorf("limit %d, want %d", got, 64<<20)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("restored to %d, want %d", got, before)
	}
	user := Streams{Getenv: env(map[string]string{"GOMEMLIMIT": "1GiB"})}
	user.SoftMemoryLimit(64 << 20)()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("with GOMEMLIMIT set the limit became %d", got)
	}
}
