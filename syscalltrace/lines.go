package syscalltrace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// maxLine bounds one trace line; strace abbreviates long arguments, so a
// longer line is not strace's.
const maxLine = 1 << 20

// lineReader yields lines without their newline, counting them.
type lineReader struct {
	r    *bufio.Reader
	name string
	line int
	long []byte
}

func newLineReader(r io.Reader, name string) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 256<<10), name: name}
}

// next returns the next line (valid until the following call) or io.EOF.
func (lr *lineReader) next() ([]byte, error) {
	line, err := lr.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = lr.r.ReadSlice('\n')
			lr.long = append(lr.long, line...)
			if len(lr.long) > maxLine {
				return nil, &ParseError{Name: lr.name, Line: lr.line + 1, Msg: fmt.Sprintf("line longer than %d KiB", maxLine>>10), Err: ErrMalformed}
			}
		}
		line = lr.long
	}
	if err != nil && err != io.EOF {
		return nil, &ParseError{Name: lr.name, Line: lr.line + 1, Msg: "read failed: " + err.Error(), Err: err}
	}
	if len(line) == 0 {
		return nil, io.EOF
	}
	lr.line++
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), nil
}
