package controlclient

import (
	"bufio"
	"errors"
	"fmt"
)

// errLineTooLong is a stream line over the limit: the stream is broken or
// hostile, so the caller drops it and reconnects.
var errLineTooLong = errors.New("stream line too long")

// readLine returns the next newline-terminated line without the newline,
// refusing lines longer than limit bytes. The returned slice is only valid
// until the next call when it fits in the reader's buffer.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		if len(line) > limit+1 { // a line that fits the buffer may still be over the limit
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, limit)
		}
		return trimEOL(line), nil
	}
	if !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err
	}
	// Long line: accumulate, bounded.
	buf := append([]byte(nil), line...)
	for {
		if len(buf) > limit {
			return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, limit)
		}
		line, err = br.ReadSlice('\n')
		buf = append(buf, line...)
		if err == nil {
			if len(buf) > limit+1 {
				return nil, fmt.Errorf("%w: more than %d bytes", errLineTooLong, limit)
			}
			return trimEOL(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}
