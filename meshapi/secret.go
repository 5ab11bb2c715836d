package meshapi

import (
	"crypto/rand"
	"encoding/hex"
)

// NodeSecretPrefix starts every node secret: "mnode-" and 64 lowercase hex
// digits.
const NodeSecretPrefix = "mnode-"

// NewNodeSecret returns a fresh node secret: 256 bits from crypto/rand. A
// node makes one before it registers and sends it as RegisterRequest.Secret
// with every attempt of that registration, so that a retry (after a timeout
// or a 5xx) is recognised and answered with the same node. It is a bearer
// credential: keep it in memory only, never log it.
func NewNodeSecret() string {
	var b [32]byte
	rand.Read(b[:]) // never fails (it crashes the program instead)
	return NodeSecretPrefix + hex.EncodeToString(b[:])
}
