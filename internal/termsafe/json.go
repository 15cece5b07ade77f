package termsafe

import (
	"bytes"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

const jsonHex = "0123456789abcdef"

// JSONUnsafe reports a character memdiag's JSON writes as \uXXXX though JSON
// allows it raw: U+2028 and U+2029 (JavaScript line ends, as
// encoding/json does), C1 controls (U+0085, U+009B: a CSI to some
// terminals) and format characters (U+202E, a right-to-left override,
// reverses what a terminal shows after it). JSON is read in terminals
// (jq, less), and names come from the process diagnosed.
func JSONUnsafe(r rune) bool {
	return r == '\u2028' || r == '\u2029' || (r >= 0x80 && r <= 0x9f) || (r > 0x7f && unicode.Is(unicode.Cf, r))
}

// AppendJSONEscape appends r as a JSON escape, a surrogate pair past the
// Basic Multilingual Plane.
func AppendJSONEscape(b []byte, r rune) []byte {
	if r > 0xffff {
		r1, r2 := utf16.EncodeRune(r)
		return AppendJSONEscape(AppendJSONEscape(b, r1), r2)
	}
	return append(b, '\\', 'u', jsonHex[r>>12&0xf], jsonHex[r>>8&0xf], jsonHex[r>>4&0xf], jsonHex[r&0xf])
}

// EscapeJSON rewrites the characters JSONUnsafe names, raw in JSON
// document b (from encoding/json), as \uXXXX. Outside strings a JSON
// document is ASCII, so every such character is inside a string and the
// result is the same document, still valid; without them b is returned
// as it is, byte for byte.
func EscapeJSON(b []byte) []byte {
	i := bytes.IndexFunc(b, JSONUnsafe)
	if i < 0 {
		return b
	}
	out := append(make([]byte, 0, len(b)+16), b[:i]...)
	for i < len(b) {
		r, size := utf8.DecodeRune(b[i:])
		if JSONUnsafe(r) {
			out = AppendJSONEscape(out, r)
		} else {
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
