// Package termsafe escapes untrusted text for a terminal: process names,
// mapping names, paths and log text come from whoever runs the process
// being diagnosed, and reach memdiag's tables, notes and error messages.
package termsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe is a character Escape writes as an escape: a control character
// (C0, DEL and C1: an ESC or a CSI, U+009B, could rewrite the screen; a
// backspace or a newline could hide or forge text), a format character (a
// right-to-left override reverses what follows) or invalid UTF-8.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError
}

// Escape makes untrusted text safe for a terminal: the characters Unsafe
// names are shown as \xNN or \uNNNN, and bytes of invalid UTF-8 as \xNN.
// The result is one line.
func Escape(s string) string {
	clean := true
	for _, r := range s {
		if Unsafe(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case Unsafe(r):
			if r < 0x100 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}
