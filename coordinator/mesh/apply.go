package mesh

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Change is what a command did, as the ops to store, in order.
type Change []store.Op

// Apply applies ops made elsewhere (another replica's committed change)
// in order. An op that breaks the state's rules (two nodes with one name,
// an event number out of turn) is an error, and the state is then not to
// be trusted: reload it.
func (m *Mesh) Apply(ops []store.Op) error {
	for i := range ops {
		if err := m.apply(&ops[i]); err != nil {
			return err
		}
	}
	return nil
}

func (m *Mesh) apply(op *store.Op) error {
	if r, ok := op.Node(); ok {
		if n := m.nodes[meshapi.NodeID(r.ID)]; n != nil {
			return m.update(n, &r)
		}
		_, err := m.add(&r)
		return err
	}
	if id, ok := op.Deleted(); ok {
		n := m.nodes[meshapi.NodeID(id)]
		if n == nil {
			return fmt.Errorf("deleting node %d: no such node", id)
		}
		m.remove(n)
		return nil
	}
	if k, ok := op.Key(); ok {
		if have := m.keys[k.ID]; have != nil {
			have.KeyRecord = k
		} else {
			m.keys[k.ID] = &Key{KeyRecord: k}
		}
		return nil
	}
	if e, ok := op.Event(); ok {
		if e.Seq != m.eventSeq+1 {
			return fmt.Errorf("event %d after event %d: numbers must follow each other", e.Seq, m.eventSeq)
		}
		m.eventSeq = e.Seq
		return nil
	}
	if name, value, ok := op.Meta(); ok {
		if err := m.setMeta(name, value); err != nil {
			return err
		}
		if name == MetaPolicyVersion { // the last of a policy change's ops
			if err := m.loadPolicy(); err != nil {
				return err
			}
			m.listener.PolicyChanged(&m.policy)
		}
		return nil
	}
	if _, _, ok := op.RemovedReplica(); ok {
		return nil // the replicas table is not the mesh's
	}
	return errors.New("mesh: unknown op")
}

// setMeta keeps a stored value, interpreting the ones the rules need.
func (m *Mesh) setMeta(name, value string) error {
	if name == MetaLastNodeID {
		id, err := strconv.ParseUint(value, 10, 64)
		if err != nil {
			return fmt.Errorf("stored last node id %q: %v", value, err)
		}
		m.lastNodeID = max(m.lastNodeID, id)
	}
	m.meta[name] = value
	return nil
}

// add makes a new node from r.
func (m *Mesh) add(r *store.NodeRecord) (*Node, error) {
	if other := m.byName[r.Name]; other != nil {
		return nil, fmt.Errorf("name %q is held by node %d", r.Name, other.ID)
	}
	if other := m.bySecret[r.SecretHash]; other != nil {
		return nil, fmt.Errorf("its secret is node %d's", other.ID)
	}
	if err := m.pool.Reserve(r.IPv4, r.IPv6); err != nil {
		return nil, err
	}
	n := &Node{}
	n.set(r, m.cfg.BaseDomain)
	m.nodes[n.ID] = n
	m.byName[n.Name] = n
	m.bySecret[n.SecretHash] = n
	m.indexKey(n)
	n.liveIdx = len(m.live)
	m.live = append(m.live, n)
	m.lastNodeID = max(m.lastNodeID, r.ID)
	m.listener.NodeAdded(n)
	return n, nil
}

// update makes n what r says. Its addresses never change.
func (m *Mesh) update(n *Node, r *store.NodeRecord) error {
	if r.IPv4 != n.IPv4 || r.IPv6 != n.IPv6 {
		return fmt.Errorf("node %d: addresses cannot change", n.ID)
	}
	if r.Name != n.Name {
		if other := m.byName[r.Name]; other != nil {
			return fmt.Errorf("renaming node %d: name %q is held by node %d", n.ID, r.Name, other.ID)
		}
		delete(m.byName, n.Name)
		m.byName[r.Name] = n
	}
	if r.SecretHash != n.SecretHash {
		return fmt.Errorf("node %d: its secret cannot change", n.ID)
	}
	before := n.Node
	n.set(r, m.cfg.BaseDomain)
	if n.PublicKey != before.PublicKey {
		m.unindexKey(n, before.PublicKey)
		m.indexKey(n)
	}
	m.listener.NodeChanged(n, &before)
	return nil
}

// remove deletes n: its name and addresses are free at once.
func (m *Mesh) remove(n *Node) {
	delete(m.nodes, n.ID)
	if m.byName[n.Name] == n {
		delete(m.byName, n.Name)
	}
	delete(m.bySecret, n.SecretHash)
	m.unindexKey(n, n.PublicKey)
	// Swap-remove from the slice that full maps iterate.
	last := m.live[len(m.live)-1]
	m.live[n.liveIdx] = last
	last.liveIdx = n.liveIdx
	m.live[len(m.live)-1] = nil
	m.live = m.live[:len(m.live)-1]
	if err := m.pool.Release(n.IPv4, n.IPv6); err != nil {
		panic("mesh: the index and the address pool disagree: " + err.Error()) // add reserved them
	}
	m.listener.NodeRemoved(n)
}

// indexKey makes n the holder of its public key unless a node that is not
// logged out holds it. (A logged-out node's key is free for a newcomer,
// which then becomes its holder; the rules treat a logged-out holder as
// none.)
func (m *Mesh) indexKey(n *Node) {
	if other := m.byPubKey[n.PublicKey]; other == nil || other.LoggedOut {
		m.byPubKey[n.PublicKey] = n
	}
}

// unindexKey forgets n as the holder of k, if it is.
func (m *Mesh) unindexKey(n *Node, k meshapi.Key) {
	if m.byPubKey[k] == n {
		delete(m.byPubKey, k)
	}
}
