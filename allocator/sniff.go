package allocator

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
)

// Format is a kind of allocator statistics.
type Format string

// The formats Sniff tells apart.
const (
	FormatMallocInfo Format = "malloc_info" // glibc's XML: package mallocinfo reads it
	FormatJemalloc   Format = "jemalloc"
	FormatTcmalloc   Format = "tcmalloc"
)

// sniffBytes is how much of the input Sniff looks at.
const sniffBytes = 64 << 10

// Sniff says which statistics br holds, from its first 64 KiB, without
// consuming them. A log with malloc_info documents among other lines is
// malloc_info; what none recognises is returned as "".
func Sniff(br *bufio.Reader) Format {
	head, _ := br.Peek(sniffBytes)
	switch {
	case looksLikeJemalloc(head):
		return FormatJemalloc
	case looksLikeTcmalloc(head):
		return FormatTcmalloc
	case bytes.Contains(head, []byte("<malloc")):
		return FormatMallocInfo
	}
	return ""
}

// NewSniffer wraps r so that Sniff can look ahead.
func NewSniffer(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, sniffBytes) }

// Parse reads jemalloc's or tcmalloc's statistics from br (made by
// NewSniffer), whichever its content shows: the parsers are tried in turn,
// as pprof tries its legacy formats. Anything else — glibc's malloc_info,
// which package mallocinfo reads, or no allocator's text — is
// ErrUnrecognized with nothing consumed, so br can go to the next parser;
// statistics of a known format that are broken are ErrMalformed.
func Parse(br *bufio.Reader, name string) (*Stats, error) {
	switch Sniff(br) {
	case FormatJemalloc:
		return ParseJemalloc(br, name)
	case FormatTcmalloc:
		return ParseTcmalloc(br, name)
	}
	return nil, fmt.Errorf("%s: %w", name, ErrUnrecognized)
}
