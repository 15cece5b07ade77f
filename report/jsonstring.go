package report

import (
	"unicode/utf8"

	"github.com/memdiag/memdiag/internal/termsafe"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does:
// quotes, backslashes and control characters escaped, invalid UTF-8 replaced
// by U+FFFD — and, past encoding/json, C1 controls and format characters
// as \uXXXX (jsonUnsafe). <, > and & are left alone (memdiag's JSON is
// not for HTML).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\t':
				b = append(b, '\\', 't')
			case '\r':
				b = append(b, '\\', 'r')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break JavaScript readers;
		// C1 controls and format characters are valid too, but act in a
		// terminal that shows the JSON (see jsonUnsafe).
		if jsonUnsafe(r) {
			b = append(b, s[start:i]...)
			b = appendRuneEscape(b, r)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonUnsafe is termsafe.JSONUnsafe.
func jsonUnsafe(r rune) bool { return termsafe.JSONUnsafe(r) }

// appendRuneEscape is termsafe.AppendJSONEscape.
func appendRuneEscape(b []byte, r rune) []byte { return termsafe.AppendJSONEscape(b, r) }

// EscapeJSON is termsafe.EscapeJSON: C1 controls and format characters,
// raw in a JSON document, written as \uXXXX.
func EscapeJSON(b []byte) []byte { return termsafe.EscapeJSON(b) }
