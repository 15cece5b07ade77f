package termsafe

import "testing"

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"python3":          "python3",
		"Web Content":      "Web Content",
		"\b\x0e\xc2\x9b":   `\x08\x0e\x9b`,
		"a\nb\x1b[2J":      `a\x0ab\x1b[2J`,
		"x\u202eexe.txt":   `x\u202eexe.txt`,
		"\xff\xfe":         `\xff\xfe`,
		"\u0085next line":  `\x85next line`,
		"日本語":              "日本語",
		"tab\there\x7fdel": `tab\x09here\x7fdel`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}
