package allocator

import (
	"bufio"
	"bytes"
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
