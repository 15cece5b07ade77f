package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Format is an output format chosen with --output.
type Format string

// The formats every command offers.
const (
	FormatTable    Format = "table"
	FormatJSON     Format = "json"
	FormatMarkdown Format = "markdown"
)

// Formats lists the accepted --output values, for help and errors: a new
// slice each call, so no caller can change what another sees.
func Formats() []Format { return []Format{FormatTable, FormatJSON, FormatMarkdown} }

// ParseFormat accepts a --output value ("md" is short for markdown): one
// of Formats, or of extra, the formats a command offers beyond them.
func ParseFormat(s string, extra ...Format) (Format, error) {
	switch strings.ToLower(s) {
	case "table", "text":
		return FormatTable, nil
	case "json":
		return FormatJSON, nil
	case "markdown", "md":
		return FormatMarkdown, nil
	}
	for _, e := range extra {
		if strings.EqualFold(s, string(e)) {
			return e, nil
		}
	}
	err := fmt.Errorf("unknown output format %q: want one of table, json, markdown", s)
	if len(extra) > 0 {
		names := make([]string, len(extra))
		for i, e := range extra {
			names[i] = string(e)
		}
		err = fmt.Errorf("%w; this command also takes %s", err, strings.Join(names, ", "))
	}
	return "", err
}

// WriteJSON writes v as indented JSON and a final newline. Every document
// memdiag writes carries a "schema" field naming its version.
// C1 controls and format characters are escaped (EscapeJSON).
func WriteJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(EscapeJSON(b.Bytes()))
	return err
}
