package mesh

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// SetEndpoints replaces n's candidate UDP endpoints (checked for form);
// nothing changes when they are the same.
func (m *Mesh) SetEndpoints(n *Node, eps []netip.AddrPort, now time.Time) Change {
	if slices.Equal(n.Endpoints, eps) {
		return nil
	}
	c := m.begin(now)
	c.putNode(n, func(r *store.NodeRecord) { r.Endpoints = NonNil(eps) })
	return c.ops
}

// Rename gives n the name (a valid DNS label) unless another node holds it.
func (m *Mesh) Rename(n *Node, name string, now time.Time) (Change, *meshapi.Error) {
	if n.Name == name {
		return nil, nil
	}
	if other := m.byName[name]; other != nil {
		return nil, conflict("name %q is held by node %d", name, other.ID)
	}
	old := n.Name
	c := m.begin(now)
	c.putNode(n, func(r *store.NodeRecord) { r.Name = name })
	c.event(meshapi.EventRenamed, n, "", old+" -> "+name)
	return c.ops, nil
}

// CreateKey adds an auth key (its secret only as a hash).
func (m *Mesh) CreateKey(k store.KeyRecord, now time.Time) (*Key, Change) {
	c := m.begin(now)
	c.do(store.PutKey(k))
	return m.keys[k.ID], c.ops
}

// RevokeKey revokes the key with this id (nil if there is none); revoking
// again changes nothing and keeps the first time.
func (m *Mesh) RevokeKey(id string, now time.Time) (*Key, Change) {
	k := m.keys[id]
	if k == nil || !k.Revoked.IsZero() {
		return k, nil
	}
	r := k.KeyRecord
	r.Revoked = now
	c := m.begin(now)
	c.do(store.PutKey(r))
	return k, c.ops
}

// SetPolicy puts the policy document src (checked already; empty: no
// policy, every node sees every other) in force as the next version,
// unless it is the document in force already; changed says which.
func (m *Mesh) SetPolicy(src []byte, now time.Time) (ch Change, changed bool) {
	if len(src) == 0 {
		src = nil
	}
	if bytes.Equal(src, m.policy.Source) && (m.policy.Version > 0 || src == nil) {
		return nil, false
	}
	c := m.begin(now)
	c.setMeta(MetaPolicySource, string(src))
	c.setMeta(MetaPolicyUpdated, strconv.FormatInt(now.UnixNano(), 10))
	c.setMetaUint(MetaPolicyVersion, m.policy.Version+1) // last: applying it puts the policy in force
	return c.ops, true
}
