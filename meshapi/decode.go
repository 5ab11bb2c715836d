package meshapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrBodyTooLarge is returned by Decode when the body exceeds its limit.
var ErrBodyTooLarge = errors.New("body too large")

// ErrBodyRead is returned by Decode when reading the body failed (the
// client was too slow to send it, or the connection broke): not a fault
// of the body's content, so a server answers it as retryable.
var ErrBodyRead = errors.New("reading body")

// Decode reads exactly one JSON value from r into v, strictly: unknown
// fields, trailing data and bodies over limit bytes are errors. Both sides
// use it for every body they did not produce themselves.
func Decode(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBodyRead, err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: more than %d bytes", ErrBodyTooLarge, limit)
	}
	return DecodeBytes(data, v)
}

// DecodeBytes is Decode for a body already in memory (one stream line, say).
func DecodeBytes(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return errors.New("empty body: want a JSON object")
		}
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: trailing data after the object")
	}
	return nil
}
