package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// The nodes and auth_keys upserts, shared by both stores (each adds its
// own placeholders): an upsert on the id only, so that another node
// holding the same name or address fails the transaction instead of being
// replaced (INSERT OR REPLACE would silently delete it, hiding a bug).
const (
	nodeColumns = `id, name, hostname, ipv4, ipv6, public_key, endpoints, ephemeral, tags, created, last_seen,
		key_id, secret_hash, logged_out, online, gc_timeout, gc_deadline, home`
	nodeUpdate = `ON CONFLICT (id) DO UPDATE SET name=excluded.name, hostname=excluded.hostname,
		ipv4=excluded.ipv4, ipv6=excluded.ipv6, public_key=excluded.public_key,
		endpoints=excluded.endpoints, ephemeral=excluded.ephemeral, tags=excluded.tags,
		created=excluded.created, last_seen=excluded.last_seen, key_id=excluded.key_id,
		secret_hash=excluded.secret_hash, logged_out=excluded.logged_out, online=excluded.online,
		gc_timeout=excluded.gc_timeout, gc_deadline=excluded.gc_deadline, home=excluded.home`
	keyColumns = `id, hash, description, ephemeral, reusable, tags, created, expires, revoked, ephemeral_timeout, uses`
)

// nodeArgs are the values of nodeColumns.
func nodeArgs(n *NodeRecord) []any {
	return []any{int64(n.ID), n.Name, n.Hostname, n.IPv4.String(), nullAddr(n.IPv6), n.PublicKey[:],
		jsonList(n.Endpoints), n.Ephemeral, jsonList(n.Tags), nanos(n.Created), nanos(n.LastSeen),
		n.KeyID, n.SecretHash[:], n.LoggedOut, n.Online, int64(n.GCTimeout), nanos(n.GCDeadline), n.Home}
}

// nullAddr is a as an address column: NULL when a is the zero Addr (a
// node without IPv6), so that any number of nodes may lack one.
func nullAddr(a netip.Addr) sql.NullString {
	return sql.NullString{String: a.String(), Valid: a.IsValid()}
}

// keyArgs are the values of keyColumns.
func keyArgs(k *KeyRecord) []any {
	return []any{k.ID, k.Hash[:], k.Description, k.Ephemeral, k.Reusable, jsonList(k.Tags),
		nanos(k.Created), nanos(k.Expires), nanos(k.Revoked), int64(k.EphemeralTimeout), k.Uses}
}

// rawNode is a nodes row as both databases return it (times in Unix
// nanoseconds, lists as JSON), before it is checked and decoded.
type rawNode struct {
	id, created, lastSeen, timeout, deadline int64
	v4, endpoints, tags                      string
	v6                                       sql.NullString // NULL: no IPv6
	pub, secret                              []byte
	n                                        NodeRecord
}

// dest returns the scan destinations of the columns id, name, hostname,
// ipv4, ipv6, public_key, endpoints, ephemeral, tags, created, last_seen,
// key_id, secret_hash, logged_out, online, gc_timeout, gc_deadline, home.
func (r *rawNode) dest() []any {
	return []any{&r.id, &r.n.Name, &r.n.Hostname, &r.v4, &r.v6, &r.pub, &r.endpoints, &r.n.Ephemeral, &r.tags,
		&r.created, &r.lastSeen, &r.n.KeyID, &r.secret, &r.n.LoggedOut, &r.n.Online, &r.timeout, &r.deadline, &r.n.Home}
}

// decode checks the row and returns the record.
func (r *rawNode) decode() (NodeRecord, error) {
	n := r.n
	n.ID = uint64(r.id)
	bad := func(what string, err error) (NodeRecord, error) {
		return NodeRecord{}, fmt.Errorf("node %d: %s: %v", r.id, what, err)
	}
	var err error
	if n.IPv4, err = netip.ParseAddr(r.v4); err != nil {
		return bad("ipv4", err)
	}
	if r.v6.Valid { // NULL: no IPv6, the zero Addr
		if n.IPv6, err = netip.ParseAddr(r.v6.String); err != nil {
			return bad("ipv6", err)
		}
	}
	if len(r.pub) != len(n.PublicKey) || len(r.secret) != len(n.SecretHash) {
		return bad("keys", errors.New("wrong length"))
	}
	copy(n.PublicKey[:], r.pub)
	copy(n.SecretHash[:], r.secret)
	n.Endpoints, n.Tags = nil, nil // the scan target is reused
	if err := json.Unmarshal([]byte(r.endpoints), &n.Endpoints); err != nil {
		return bad("endpoints", err)
	}
	if err := json.Unmarshal([]byte(r.tags), &n.Tags); err != nil {
		return bad("tags", err)
	}
	n.Created, n.LastSeen, n.GCDeadline = unnanos(r.created), unnanos(r.lastSeen), unnanos(r.deadline)
	n.GCTimeout = time.Duration(r.timeout)
	return n, nil
}

// rawKey is an auth_keys row before it is checked and decoded.
type rawKey struct {
	hash                               []byte
	tags                               string
	created, expires, revoked, timeout int64
	k                                  KeyRecord
}

// dest returns the scan destinations of the columns id, hash, description,
// ephemeral, reusable, tags, created, expires, revoked, ephemeral_timeout,
// uses.
func (r *rawKey) dest() []any {
	return []any{&r.k.ID, &r.hash, &r.k.Description, &r.k.Ephemeral, &r.k.Reusable, &r.tags,
		&r.created, &r.expires, &r.revoked, &r.timeout, &r.k.Uses}
}

// decode checks the row and returns the record.
func (r *rawKey) decode() (KeyRecord, error) {
	k := r.k
	if len(r.hash) != len(k.Hash) {
		return KeyRecord{}, fmt.Errorf("key %s: stored hash has %d bytes", k.ID, len(r.hash))
	}
	copy(k.Hash[:], r.hash)
	k.Tags = nil // the scan target is reused
	if err := json.Unmarshal([]byte(r.tags), &k.Tags); err != nil {
		return KeyRecord{}, fmt.Errorf("key %s: tags: %w", k.ID, err)
	}
	k.Created, k.Expires, k.Revoked = unnanos(r.created), unnanos(r.expires), unnanos(r.revoked)
	k.EphemeralTimeout = time.Duration(r.timeout)
	return k, nil
}
