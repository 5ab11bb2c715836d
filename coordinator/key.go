package coordinator

import (
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// key is an auth key in memory.
type key struct {
	store.KeyRecord
}

func (k *key) state(now time.Time) meshapi.KeyState {
	switch {
	case !k.Revoked.IsZero():
		return meshapi.KeyRevoked
	case !k.Expires.IsZero() && !now.Before(k.Expires):
		return meshapi.KeyExpired
	case !k.Reusable && k.Uses > 0:
		return meshapi.KeyUsed
	}
	return meshapi.KeyValid
}

func (k *key) api(now time.Time) meshapi.AuthKey {
	return meshapi.AuthKey{
		ID: k.ID, Description: k.Description, Ephemeral: k.Ephemeral, Reusable: k.Reusable,
		Tags: nonNil(k.Tags), Created: k.Created, Expires: k.Expires,
		EphemeralTimeout: meshapi.Duration(k.EphemeralTimeout), Uses: k.Uses, Revoked: k.Revoked,
		State: k.state(now),
	}
}
