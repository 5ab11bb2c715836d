package policy

import (
	"errors"
	"fmt"
)

// standardize turns JSON with comments and trailing commas into plain JSON
// of the same length: comments and trailing commas become spaces (newlines
// are kept), so byte offsets, lines and columns are the same in both.
func standardize(src []byte) ([]byte, error) {
	out := make([]byte, len(src))
	copy(out, src)
	lastComma := -1 // offset of a comma not yet followed by a value
	for i := 0; i < len(out); i++ {
		switch c := out[i]; {
		case c == '"':
			end, err := skipString(out, i)
			if err != nil {
				return nil, err
			}
			i = end
			lastComma = -1
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				out[i] = ' '
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			start := i
			for i += 2; i+1 < len(out) && !(out[i] == '*' && out[i+1] == '/'); i++ {
			}
			if i+1 >= len(out) {
				return nil, &syntaxError{offset: start, msg: "comment /* is never closed with */"}
			}
			blank(out[start : i+2])
			i++
		case c == ',':
			lastComma = i
		case c == ']' || c == '}':
			if lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma = -1
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		default:
			lastComma = -1
		}
	}
	return out, nil
}

// skipString returns the offset of the closing quote of the string that
// starts at b[i].
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j, nil
		case '\n':
			return 0, &syntaxError{offset: i, msg: "string is not closed on its line"}
		}
	}
	return 0, &syntaxError{offset: i, msg: "string is never closed"}
}

// blank replaces everything but newlines with spaces.
func blank(b []byte) {
	for i, c := range b {
		if c != '\n' {
			b[i] = ' '
		}
	}
}

// syntaxError is an error at a byte offset of the document.
type syntaxError struct {
	offset int
	msg    string
}

func (e *syntaxError) Error() string { return e.msg }

// position turns a byte offset into a 1-based line and column.
func position(src []byte, offset int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < offset && i < len(src); i++ {
		if src[i] == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// Error is a problem with a policy document, at a place in it.
type Error struct {
	Line, Column int    // 1-based; 0 when the problem has no one place
	Msg          string // what is wrong, and what to do
}

func (e *Error) Error() string {
	if e.Line == 0 {
		return "policy: " + e.Msg
	}
	return fmt.Sprintf("policy: line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// at makes an *Error at offset of src from err (whose own offset, for a
// syntax error, wins).
func at(src []byte, offset int, err error) *Error {
	var se *syntaxError
	if errors.As(err, &se) {
		offset = se.offset
	}
	line, col := position(src, offset)
	return &Error{Line: line, Column: col, Msg: err.Error()}
}
