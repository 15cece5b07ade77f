package report

import (
	"bytes"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
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

// jsonUnsafe is a character memdiag's JSON writes as \uXXXX though JSON
// allows it raw: U+2028 and U+2029 (JavaScript line ends, as
// encoding/json does), C1 controls (U+0085, U+009B: a CSI to some
// terminals) and format characters (U+202E, a right-to-left override,
// reverses what a terminal shows after it). JSON is read in terminals
// (jq, less), and names come from the process diagnosed.
func jsonUnsafe(r rune) bool {
	return r == '\u2028' || r == '\u2029' || (r >= 0x80 && r <= 0x9f) || (r > 0x7f && unicode.Is(unicode.Cf, r))
}

// appendRuneEscape appends r as a JSON escape, a surrogate pair past the
// Basic Multilingual Plane.
func appendRuneEscape(b []byte, r rune) []byte {
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		return appendRuneEscape(appendRuneEscape(b, r1), r2)
	}
	return append(b, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// EscapeJSON rewrites the characters jsonUnsafe names, raw in JSON
// document b (from encoding/json), as \uXXXX. Outside strings a JSON
// document is ASCII, so every such character is inside a string and the
// result is the same document, still valid; without them b is returned
// as it is, byte for byte.
func EscapeJSON(b []byte) []byte {
	i := bytes.IndexFunc(b, jsonUnsafe)
	if i < 0 {
		return b
	}
	out := append(make([]byte, 0, len(b)+16), b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if jsonUnsafe(r) {
			out = appendRuneEscape(out, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
