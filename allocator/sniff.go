package allocator

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// statsFormat is a kind of allocator statistics.
type statsFormat string

// The formats sniff tells apart.
const (
	formatMallocInfo statsFormat = "malloc_info" // glibc's XML: package mallocinfo reads it
	formatJemalloc   statsFormat = "jemalloc"
	formatTcmalloc   statsFormat = "tcmalloc"
)

// sniffBytes is how much of the input sniff looks at.
const sniffBytes = 64 << 10

// sniff says which statistics br holds, from its first 64 KiB, without
// consuming them. A log with malloc_info documents among other lines is
// malloc_info; what none recognises is returned as "".
func sniff(br *bufio.Reader) statsFormat {
	head, _ := br.Peek(sniffBytes)
	switch {
	case looksLikeJemalloc(head):
		return formatJemalloc
	case looksLikeTcmalloc(head):
		return formatTcmalloc
	case bytes.Contains(head, []byte("<malloc")):
		return formatMallocInfo
	}
	return ""
}

// NewSniffer wraps r so that sniff can look ahead.
func NewSniffer(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, sniffBytes) }

// Parse reads jemalloc's or tcmalloc's statistics from br (made by
// NewSniffer), whichever its content shows: the parsers are tried in turn,
// as pprof tries its legacy formats. Anything else — glibc's malloc_info,
// which package mallocinfo reads, or no allocator's text — is
// ErrUnrecognized with nothing consumed, so br can go to the next parser;
// statistics of a known format that are broken are ErrMalformed.
func Parse(br *bufio.Reader, name string) (*Stats, error) {
	switch sniff(br) {
	case formatJemalloc:
		return parseJemalloc(br, name)
	case formatTcmalloc:
		return parseTcmalloc(br, name)
	}
	return nil, fmt.Errorf("%s: %w", name, ErrUnrecognized)
}
