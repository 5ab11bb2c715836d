package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
)

// metaRelayMeshKey names the mesh key in meta: the secret the replicas'
// relays prove to each other when they link (coordinator/relay). It must
// be the same on every replica, so it lives in the database; it is kept
// as is, not hashed, because each replica computes proofs with it.
const metaRelayMeshKey = "relay_mesh_key"

// relayMeshKeyLen is the mesh key's length in bytes.
const relayMeshKeyLen = 32

// RelayMeshKey returns the mesh key of the replicas' relays, creating it
// on first use. Replicas that ask at the same moment get the same key:
// the first insert wins and every one reads what is stored.
func (s *Postgres) RelayMeshKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, relayMeshKeyLen)
	rand.Read(fresh)
	stored, err := s.EnsureMeta(ctx, metaRelayMeshKey, base64.StdEncoding.EncodeToString(fresh))
	if err != nil {
		return nil, fmt.Errorf("the relay mesh key: %w", err)
	}
	key, err := base64.StdEncoding.DecodeString(stored)
	if err != nil || len(key) < relayMeshKeyLen {
		return nil, fmt.Errorf("the relay mesh key in meta (%q) is not %d bytes in base64: delete that row and restart the replicas to make a new one", metaRelayMeshKey, relayMeshKeyLen)
	}
	return key, nil
}
