package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/memdiag/memdiag/internal/parseerr"
)

// ErrTooLarge means an input, or one line of it, is larger than the bound
// its reader sets: past it, memdiag stops instead of buffering on.
var ErrTooLarge = errors.New("larger than the limit")

// LimitReader returns a reader of r that fails, with an error wrapping
// ErrTooLarge and naming name and max, once r holds more than max bytes.
// Unlike io.LimitReader it never passes a cut input off as whole.
func LimitReader(r io.Reader, max int64, name string) io.Reader {
	return &limitReader{r: r, left: max, max: max, name: name}
}

type limitReader struct {
	r         io.Reader
	left, max int64
	name      string
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, l.err()
	}
	// Read one byte past the bound, to tell "exactly max" from "more".
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n + int(l.left), l.err()
	}
	return n, err
}

func (l *limitReader) err() error {
	return fmt.Errorf("%s: %w of %s", l.name, ErrTooLarge, size(l.max))
}

// ReadAll reads r whole, or fails as LimitReader does past max bytes.
func ReadAll(r io.Reader, max int64, name string) ([]byte, error) {
	return io.ReadAll(LimitReader(r, max, name))
}

// LineLimitReader returns a reader of r that fails once a line (the bytes
// between two newlines) is longer than max bytes, with a *parseerr.Error
// wrapping ErrTooLarge that names name and the line. It bounds what a
// parser that gathers a line or a token whole can be made to hold.
func LineLimitReader(r io.Reader, max int, name string) io.Reader {
	return &lineLimitReader{r: r, max: max, name: name, line: 1}
}

type lineLimitReader struct {
	r        io.Reader
	max, cur int // cur: bytes of the current line read so far
	line     int // 1-based number of the current line
	name     string
	err      error
}

func (l *lineLimitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	for i := 0; i < n; {
		j := bytes.IndexByte(p[i:n], '\n')
		if j < 0 {
			l.cur += n - i
			if l.cur > l.max {
				// Hand over what precedes the bound; fail on the next call.
				l.err = &parseerr.Error{Name: l.name, Line: l.line, Msg: fmt.Sprintf("line longer than %s", size(int64(l.max))), Err: ErrTooLarge}
				return max(0, n-(l.cur-l.max)), nil
			}
			break
		}
		if l.cur+j > l.max {
			l.err = &parseerr.Error{Name: l.name, Line: l.line, Msg: fmt.Sprintf("line longer than %s", size(int64(l.max))), Err: ErrTooLarge}
			return i + (l.max - l.cur), nil
		}
		i += j + 1
		l.cur = 0
		l.line++
	}
	return n, err
}

// size writes a bound for people: 64 MiB, 1 KiB, 100 B.
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
