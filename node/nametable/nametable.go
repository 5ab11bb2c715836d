// Package nametable resolves mesh names for the node's local proxy: it
// decides, for each destination an app asks for, whether it is a mesh node
// (by name or by mesh address) and so goes through the tunnel, or something
// else that goes to the normal network.
//
// A peer named "web" in the mesh domain "mesh.internal" answers to "web",
// "web.mesh.internal" and "web.mesh.internal." (any letter case). A name
// under the mesh domain that is not in the map is an error rather than a
// lookup in the normal DNS, so mesh-internal names never leak.
package nametable

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/meshinit/meshinit/meshapi"
)

// Entry is one node's name and addresses.
type Entry struct {
	ID   meshapi.NodeID
	Name string // DNS label
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// ErrNoSuchNode is returned for a name under the mesh domain that no node
// holds.
var ErrNoSuchNode = errors.New("no such node in the mesh")

// Table maps mesh names to addresses. The zero value is an empty table;
// it is safe for concurrent use (the map stream writes while the proxy
// reads).
type Table struct {
	mu       sync.RWMutex
	domain   string // lower case, no leading or trailing dot
	prefixes []netip.Prefix
	byID     map[meshapi.NodeID]Entry
	byName   map[string]meshapi.NodeID // lower-case label
}

// Reset replaces the whole table: the mesh's domain and address ranges,
// and every node (the node itself included, so its own name resolves).
func (t *Table) Reset(domain string, prefixes []netip.Prefix, entries []Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.domain = strings.ToLower(strings.Trim(domain, "."))
	t.prefixes = append([]netip.Prefix(nil), prefixes...)
	t.byID = make(map[meshapi.NodeID]Entry, len(entries))
	t.byName = make(map[string]meshapi.NodeID, len(entries))
	for _, e := range entries {
		t.upsertLocked(e)
	}
}

// Upsert adds a node or replaces the node with the same ID (a rename moves
// its name).
func (t *Table) Upsert(e Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.upsertLocked(e)
}

func (t *Table) upsertLocked(e Entry) {
	if t.byID == nil {
		t.byID = map[meshapi.NodeID]Entry{}
		t.byName = map[string]meshapi.NodeID{}
	}
	t.removeLocked(e.ID)
	t.byID[e.ID] = e
	if e.Name != "" {
		t.byName[strings.ToLower(e.Name)] = e.ID
	}
}

// Remove drops a node.
func (t *Table) Remove(id meshapi.NodeID) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.removeLocked(id)
}

func (t *Table) removeLocked(id meshapi.NodeID) {
	old, ok := t.byID[id]
	if !ok {
		return
	}
	delete(t.byID, id)
	if k := strings.ToLower(old.Name); t.byName[k] == id {
		delete(t.byName, k)
	}
}

// Len returns the number of nodes in the table.
func (t *Table) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// Resolve decides where host (a name or an IP literal, as an app gave it
// to the proxy) lives. mesh is true for a mesh node: addr is then its mesh
// address (IPv4 when it has one). mesh is false for everything else: the
// caller dials host on the normal network, and addr is unset. A name under
// the mesh domain that no node holds gives ErrNoSuchNode.
func (t *Table) Resolve(host string) (addr netip.Addr, mesh bool, err error) {
	if a, perr := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); perr == nil {
		a = a.Unmap()
		return a, t.InMesh(a), nil
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "" || len(name) > 253 {
		return netip.Addr{}, false, fmt.Errorf("destination %q: not a valid host name", host)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	label := name
	underDomain := false
	if t.domain != "" {
		if name == t.domain {
			return netip.Addr{}, false, fmt.Errorf("destination %q: %w (the mesh domain itself is not a node)", host, ErrNoSuchNode)
		}
		if l, ok := strings.CutSuffix(name, "."+t.domain); ok {
			label, underDomain = l, true
		}
	}
	if id, ok := t.byName[label]; ok {
		e := t.byID[id]
		if e.IPv4.IsValid() {
			return e.IPv4, true, nil
		}
		if e.IPv6.IsValid() {
			return e.IPv6, true, nil
		}
	}
	if underDomain {
		return netip.Addr{}, false, fmt.Errorf("destination %q: %w", host, ErrNoSuchNode)
	}
	return netip.Addr{}, false, nil
}

// InMesh reports whether a is inside the mesh's address ranges.
func (t *Table) InMesh(a netip.Addr) bool {
	a = a.Unmap()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Domain is the mesh domain, lower case, without a leading or final dot
// ("mesh.internal"); "" before the first Reset.
func (t *Table) Domain() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.domain
}

// LookupAddr returns the node that holds mesh address a (for reverse
// lookups). It scans the table: a reverse lookup is rare next to names.
func (t *Table) LookupAddr(a netip.Addr) (Entry, bool) {
	a = a.Unmap()
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, e := range t.byID {
		if e.IPv4 == a || e.IPv6 == a {
			return e, true
		}
	}
	return Entry{}, false
}

// Lookup returns the entry for a mesh name (a label or an FQDN).
func (t *Table) Lookup(name string) (Entry, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.domain != "" {
		name = strings.TrimSuffix(name, "."+t.domain)
	}
	id, ok := t.byName[name]
	if !ok {
		return Entry{}, false
	}
	return t.byID[id], true
}
