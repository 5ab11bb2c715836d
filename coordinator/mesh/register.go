package mesh

import (
	"net/http"
	"net/netip"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/names"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Registration is a node's request to join, checked for form already.
type Registration struct {
	Key        authkey.Key
	Hostname   string
	PublicKey  meshapi.Key
	Endpoints  []netip.AddrPort
	SecretHash authkey.Hash
	// NoIPv6: the node cannot carry IPv6, so it gets no IPv6 address (its
	// IPv4 address's pair stays unused, and free only with it).
	NoIPv6 bool
}

// Register makes a node for r, or, when r's secret is already a node's,
// treats r as a retry of that node's registration (repeated is true, the
// change empty). A refused registration changes nothing: no key use, name
// or address is consumed.
func (m *Mesh) Register(r *Registration, now time.Time) (n *Node, repeated bool, ch Change, e *meshapi.Error) {
	if n := m.bySecret[r.SecretHash]; n != nil {
		n, e := m.repeat(n, r)
		return n, true, nil, e
	}
	ak, e := m.usableKey(r.Key, now)
	if e != nil {
		return nil, false, nil, e
	}
	// The same machine (same WireGuard key, same auth key) back after a
	// crash: its stale registration gives way; a live one keeps its key.
	pubHolder := m.byPubKey[r.PublicKey]
	if pubHolder != nil && (pubHolder.LoggedOut || !m.replaceable(pubHolder, ak, now)) {
		if !pubHolder.LoggedOut {
			return nil, false, nil, conflict(
				"public key already registered to node %d (%s), which is online or was seen within the last %v: every node needs its own WireGuard key",
				pubHolder.ID, pubHolder.Name, m.cfg.ReconnectGrace)
		}
		pubHolder = nil // a logged-out node's key is free
	}
	base := names.Sanitize(r.Hostname)
	name := names.Unique(base, func(l string) bool {
		h := m.byName[l]
		return h != nil && h != pubHolder && !(m.replaceable(h, ak, now) && names.Sanitize(h.Hostname) == base)
	})
	nameHolder := m.byName[name]
	if nameHolder == pubHolder {
		nameHolder = nil
	}
	// Check the pool before replacing anyone. (A replaced node's addresses
	// are free again.)
	if m.pool.Free() == 0 && pubHolder == nil && nameHolder == nil {
		return nil, false, nil, errorf(http.StatusServiceUnavailable, meshapi.ErrPoolExhausted,
			"no free mesh address: delete unused nodes (meshcoord nodes list)")
	}

	c := m.begin(now)
	if pubHolder != nil {
		c.deleteNode(pubHolder, meshapi.ReasonReplaced, "its public key registered again with its auth key")
	}
	if nameHolder != nil {
		c.deleteNode(nameHolder, meshapi.ReasonReplaced, "its name "+name+" taken by a newcomer of the same auth key")
	}
	v4, v6, err := m.pool.Next()
	if err != nil {
		panic("mesh: no address although one is free: " + err.Error()) // checked above
	}
	if r.NoIPv6 {
		v6 = netip.Addr{}
	}
	id := m.lastNodeID + 1
	key := ak.KeyRecord
	key.Uses++
	c.do(store.PutKey(key))
	c.setMetaUint(MetaLastNodeID, id)
	rec := store.NodeRecord{
		ID: id, Name: name, Hostname: r.Hostname, IPv4: v4, IPv6: v6, PublicKey: r.PublicKey,
		Endpoints: NonNil(r.Endpoints), Ephemeral: ak.Ephemeral, Tags: NonNil(ak.Tags), Created: now,
		KeyID: ak.ID, SecretHash: r.SecretHash,
	}
	if ak.Ephemeral {
		rec.GCTimeout = ak.EphemeralTimeout
		// The clock starts at registration: a node that never connects is
		// collected too.
		rec.GCDeadline = now.Add(m.timeoutOf(rec.GCTimeout))
	}
	c.do(store.PutNode(rec))
	n = m.nodes[meshapi.NodeID(id)]
	c.event(meshapi.EventRegistered, n, "", "key "+ak.ID)
	return n, false, c.ops, nil
}

func (m *Mesh) timeoutOf(own time.Duration) time.Duration {
	if own > 0 {
		return own
	}
	return m.cfg.EphemeralTimeout
}

// repeat answers a registration whose node secret is n's: a retry of the
// registration that made n (after a timeout, a 5xx, a lost answer or a
// restart). It must come with n's auth key and public key; then it gets n
// as it is, whatever the key's state now.
func (m *Mesh) repeat(n *Node, r *Registration) (*Node, *meshapi.Error) {
	ak, e := m.knownKey(r.Key)
	if e != nil {
		return nil, e
	}
	if n.KeyID != ak.ID || n.PublicKey != r.PublicKey {
		return nil, conflict("this node secret is node %d's, registered with another auth key or public key: a retry sends the same ones; a new node makes a new secret", n.ID)
	}
	if n.LoggedOut {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrLoggedOut,
			"node %d (%s), registered with this secret, has logged out: register with a new secret", n.ID, n.Name)
	}
	return n, nil
}

// knownKey finds the key k names, if its secret matches.
func (m *Mesh) knownKey(k authkey.Key) (*Key, *meshapi.Error) {
	ak := m.keys[k.ID]
	if ak == nil || !k.Matches(ak.Hash) {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyInvalid,
			"auth key %s is not known to this coordinator: create one with \"meshcoord keys create\"", k.ID)
	}
	return ak, nil
}

// usableKey finds the key and says exactly why it cannot be used.
func (m *Mesh) usableKey(k authkey.Key, now time.Time) (*Key, *meshapi.Error) {
	ak, e := m.knownKey(k)
	if e != nil {
		return nil, e
	}
	switch ak.State(now) {
	case meshapi.KeyRevoked:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyRevoked,
			"auth key %s was revoked at %s: create a new key", ak.ID, ak.Revoked.UTC().Format(time.RFC3339))
	case meshapi.KeyExpired:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyExpired,
			"auth key %s expired at %s: create a new key (or one with a longer --expiry)", ak.ID, ak.Expires.UTC().Format(time.RFC3339))
	case meshapi.KeyUsed:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyUsed,
			"auth key %s is a one-off key and was already used: create a new key, or a --reusable one", ak.ID)
	}
	return ak, nil
}

// replaceable reports whether holder may give way (its name, its public
// key) to a newcomer that registers with key ak: holder is an ephemeral
// node of the same key, not logged out, and has been absent for longer
// than the reconnect grace. Absent means offline (no stream, grace over)
// since it went offline, or since it registered if it never connected,
// but never since before the state was loaded: a node the coordinator
// could not see while it was down gets one grace from the start to
// reconnect (its reconnect backoff stays below the grace). So a live node,
// one that is in its grace or has just registered, is never replaced.
func (m *Mesh) replaceable(holder *Node, ak *Key, now time.Time) bool {
	if !holder.Ephemeral || holder.KeyID != ak.ID || holder.LoggedOut || holder.Online {
		return false
	}
	absentSince := holder.LastSeen // when its last stream dropped
	if absentSince.IsZero() {
		absentSince = holder.Created // it never connected
	}
	if absentSince.Before(m.started) {
		absentSince = m.started
	}
	return now.Sub(absentSince) > m.cfg.ReconnectGrace
}
