package controlclient

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 100)
	br := bufio.NewReaderSize(strings.NewReader("a\r\n\n"+long+"\n"+long+"y\nlast"), 16)
	want := []string{"a", "", long}
	for _, w := range want {
		got, err := readLine(br, 100)
		if err != nil || string(got) != w {
			t.Fatalf("readLine = %q, %v; want %q", got, err, w)
		}
	}
	if _, err := readLine(br, 100); !errors.Is(err, errLineTooLong) {
		t.Fatalf("101-byte line with limit 100: err=%v, want errLineTooLong", err)
	}
	// The limit holds for a line that fits the reader's buffer too.
	br = bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 11)+"\n"+strings.Repeat("y", 10)+"\n"), 64)
	if _, err := readLine(br, 10); !errors.Is(err, errLineTooLong) {
		t.Fatalf("11-byte line with limit 10 in a 64-byte buffer: err=%v, want errLineTooLong", err)
	}
	if got, err := readLine(br, 10); err != nil || string(got) != strings.Repeat("y", 10) {
		t.Fatalf("10-byte line with limit 10: %q, %v", got, err)
	}
	br = bufio.NewReaderSize(strings.NewReader("unterminated"), 16)
	if _, err := readLine(br, 100); !errors.Is(err, io.EOF) {
		t.Fatalf("unterminated last line: err=%v, want EOF", err)
	}
}

func TestReadLineNeverExceedsLimitOnEndlessLine(t *testing.T) {
	// an endless line must be refused after about limit bytes, not read whole
	r := io.LimitReader(endless{}, 1<<30)
	br := bufio.NewReaderSize(r, 4096)
	if _, err := readLine(br, 1<<16); !errors.Is(err, errLineTooLong) {
		t.Fatalf("err=%v, want errLineTooLong", err)
	}
}

type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'z'
	}
	return len(p), nil
}
