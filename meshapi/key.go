package meshapi

import (
	"encoding/base64"
	"fmt"
)

// Key is a Curve25519 (WireGuard) public key. On the wire it is standard
// base64, as "wg" prints it.
type Key [32]byte

// ParseKey parses a base64 WireGuard key.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != base64.StdEncoding.EncodedLen(len(k)) {
		return k, fmt.Errorf("key %q: want %d base64 characters, got %d", short(s), base64.StdEncoding.EncodedLen(len(k)), len(s))
	}
	// Decode into a buffer big enough for any 44 characters: 44 unpadded
	// characters would be 33 bytes, one more than a key.
	var buf [33]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil {
		return Key{}, fmt.Errorf("key %q: not standard base64: %v", short(s), err)
	}
	if n != len(k) {
		return Key{}, fmt.Errorf("key %q: decodes to %d bytes, want %d", short(s), n, len(k))
	}
	copy(k[:], buf[:n])
	return k, nil
}

// IsZero reports whether k is all zeros (unset).
func (k Key) IsZero() bool { return k == Key{} }

func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// MarshalText implements encoding.TextMarshaler.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = p
	return nil
}

func short(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
