// Package authkey makes, parses and checks the secrets of the coordinator:
// auth keys (which register nodes) and node secrets (which authenticate a
// registered node). Both are shown once and only their SHA-256 is stored.
//
// An auth key reads "mkey-<id>-<secret>": id is 16 lowercase hex digits that
// name the key in listings and find its record; secret is 64 lowercase hex
// digits (32 random bytes). The id is not secret; the secret part is.
// A node secret reads "mnode-<secret>" with the same 64-digit secret.
package authkey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/meshinit/meshinit/meshapi"
)

const (
	keyPrefix    = "mkey-"
	secretPrefix = meshapi.NodeSecretPrefix
	idHexLen     = 16
	secretHexLen = 64
)

// Hash is the stored form of a secret: its SHA-256.
type Hash [sha256.Size]byte

// Key is a parsed auth key.
type Key struct {
	ID     string
	secret string
}

// Hash returns the stored form of the key's secret part.
func (k Key) Hash() Hash { return sum(k.secret) }

// String returns the full key, secret included: only for showing it once.
func (k Key) String() string { return keyPrefix + k.ID + "-" + k.secret }

// New makes a fresh random auth key.
func New() (Key, error) {
	id, err := randomHex(idHexLen / 2)
	if err != nil {
		return Key{}, err
	}
	sec, err := randomHex(secretHexLen / 2)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: id, secret: sec}, nil
}

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("malformed auth key")

// Parse reads a full auth key. Its errors never repeat the secret part.
func Parse(s string) (Key, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Key{}, fmt.Errorf("%w: empty: pass the key printed by \"meshcoord keys create\"", ErrMalformed)
	}
	rest, ok := strings.CutPrefix(s, keyPrefix)
	if !ok {
		return Key{}, fmt.Errorf("%w: it must start with %q (as printed by \"meshcoord keys create\")", ErrMalformed, keyPrefix)
	}
	id, sec, ok := strings.Cut(rest, "-")
	if !ok || len(id) != idHexLen || !isLowerHex(id) {
		return Key{}, fmt.Errorf("%w: want %s<%d hex digits>-<%d hex digits>", ErrMalformed, keyPrefix, idHexLen, secretHexLen)
	}
	if len(sec) != secretHexLen || !isLowerHex(sec) {
		return Key{}, fmt.Errorf("%w: the secret part of key %s is not %d hex digits (was the key cut or pasted twice?)", ErrMalformed, id, secretHexLen)
	}
	return Key{ID: id, secret: sec}, nil
}

// ValidID reports whether s has the shape of a key id (for admin input).
func ValidID(s string) bool { return len(s) == idHexLen && isLowerHex(s) }

// Matches reports, in constant time, whether k's secret hashes to h.
func (k Key) Matches(h Hash) bool {
	got := k.Hash()
	return subtle.ConstantTimeCompare(got[:], h[:]) == 1
}

// NewNodeSecret makes a fresh node secret (meshapi.NewNodeSecret) and
// returns it with its hash.
func NewNodeSecret() (string, Hash) {
	s := meshapi.NewNodeSecret()
	return s, sum(strings.TrimPrefix(s, secretPrefix))
}

// ParseNodeSecret checks the shape of a node secret and returns its hash, the
// lookup key of the node. A 256-bit random secret needs no constant-time
// lookup: knowing where a guess's hash falls teaches nothing about the secret.
func ParseNodeSecret(s string) (Hash, error) {
	sec, ok := strings.CutPrefix(s, secretPrefix)
	if !ok || len(sec) != secretHexLen || !isLowerHex(sec) {
		return Hash{}, fmt.Errorf("malformed node secret: want %s<%d hex digits> as returned by /v1/register", secretPrefix, secretHexLen)
	}
	return sum(sec), nil
}

func sum(s string) Hash { return sha256.Sum256([]byte(s)) }

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
