package dataplane

import (
	"crypto/ecdh"
	"crypto/rand"
	"fmt"

	"github.com/meshinit/meshinit/meshapi"
)

// GeneratePrivateKey returns a fresh Curve25519 private key for a node. It
// is made per process and kept in memory only: a restarted container is a
// new node.
func GeneratePrivateKey() ([32]byte, error) {
	var k [32]byte
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return k, fmt.Errorf("generating WireGuard key: %w", err)
	}
	copy(k[:], priv.Bytes())
	return k, nil
}

// PublicKey returns the WireGuard public key of a private key, the value the
// node registers with the coordinator.
func PublicKey(private [32]byte) (meshapi.Key, error) {
	priv, err := ecdh.X25519().NewPrivateKey(private[:])
	if err != nil {
		return meshapi.Key{}, fmt.Errorf("WireGuard private key: %w", err)
	}
	var pub meshapi.Key
	copy(pub[:], priv.PublicKey().Bytes())
	return pub, nil
}
