package report

import (
	"bytes"
	"encoding/json"
	"testing"
)

// TestEscapeJSON: C1 controls, format characters (a right-to-left
// override, a language tag past the BMP) and U+2028 are written as
// escapes, in appendString and in a post-pass of encoding/json's output
// alike; the document stays valid and decodes to the same text, and one
// without them is left byte for byte.
func TestEscapeJSON(t *testing.T) {
	for in, want := range map[string]string{
		"plain, <&> 日本語 \ufffd": `"plain, <&> 日本語 ` + "\ufffd" + `"`,
		"a\u0085b\u009bc":       `"a\u0085b\u009bc"`,
		"exe\u202etxt.sh":       `"exe\u202etxt.sh"`,
		"\u200b\u2066\ufeff":    `"\u200b\u2066\ufeff"`,
		"tag\U000e0001":         `"tag\udb40\udc01"`,
		"line\u2028end":         `"line\u2028end"`,
		"soft\u00adhyphen":      `"soft\u00adhyphen"`,
	} {
		if got := string(appendString(nil, in)); got != want {
			t.Errorf("appendString(%q) = %s, want %s", in, got, want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // as WriteJSON
		if err := enc.Encode(in); err != nil {
			t.Fatal(err)
		}
		raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		got := EscapeJSON(raw)
		if string(got) != want {
			t.Errorf("EscapeJSON(%s) = %s, want %s", raw, got, want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || back != in {
			t.Errorf("%s decodes to %q (%v), want %q", got, back, err, in)
		}
	}
	doc := []byte("{\n  \"a\": \"b\"\n}\n")
	if got := EscapeJSON(doc); &got[0] != &doc[0] {
		t.Error("a document without such characters was copied")
	}
}
