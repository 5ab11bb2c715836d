package coordinator

import (
	"context"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// The seam to the relay (coordinator/relay), which is served next to
// Handler on the same listener: it authenticates a relay connection like
// any node request, and hears when a node leaves so its relay connection
// is closed.

// AuthenticateRelay returns the public key of the node whose secret r
// carries, or the same error any node request would get.
func (s *Server) AuthenticateRelay(r *http.Request) (meshapi.Key, *meshapi.Error) {
	id, e := s.authNode(r)
	if e != nil {
		return meshapi.Key{}, e
	}
	var k meshapi.Key
	s.read(func(m *mesh.Mesh) {
		if n := m.Node(id); n != nil {
			k = n.PublicKey
		}
	})
	return k, nil
}

// NodeActive reports whether a node with public key k is registered and
// not logged out (a relay re-checks this after it registered a connection,
// closing the gap between AuthenticateRelay and OnNodeGone).
func (s *Server) NodeActive(k meshapi.Key) bool {
	active := false
	s.read(func(m *mesh.Mesh) {
		n := m.NodeByPublicKey(k)
		active = n != nil && !n.LoggedOut
	})
	return active
}

// OnNodeGone sets f to be called with a node's public key when the node is
// deleted or logged out. f runs on its own goroutine, never under the
// server's lock. Set it before serving.
func (s *Server) OnNodeGone(f func(meshapi.Key)) {
	s.mu.Lock()
	s.nodeGone = f
	s.mu.Unlock()
}

// nodeGoneLocked tells the relay that the node with key k left.
func (s *Server) nodeGoneLocked(k meshapi.Key) {
	if f := s.nodeGone; f != nil {
		go f(k)
	}
}

// RegisterMetrics adds c's series to the coordinator's /metrics.
func (s *Server) RegisterMetrics(c prometheus.Collector) error {
	return s.metrics.reg.Register(c)
}

// replicaStore is a store shared by several replicas (PostgreSQL): it
// knows this replica's id, the others, and the relays' mesh key.
type replicaStore interface {
	Instance() string
	Replicas(ctx context.Context) ([]store.Replica, error)
	RelayMeshKey(ctx context.Context) ([]byte, error)
}

// RelayMesh is what a relay needs to link with the other replicas' relays.
type RelayMesh struct {
	ID       string // this replica's id
	Key      []byte // the mesh key, the same on every replica; never log it
	Replicas func(ctx context.Context) ([]store.Replica, error)
}

// RelayMesh returns the relay mesh of this coordinator's store, or nil
// when the store has no replicas (SQLite).
func (s *Server) RelayMesh(ctx context.Context) (*RelayMesh, error) {
	rs, ok := s.st.(replicaStore)
	if !ok {
		return nil, nil
	}
	key, err := rs.RelayMeshKey(ctx)
	if err != nil {
		return nil, err
	}
	return &RelayMesh{ID: rs.Instance(), Key: key, Replicas: rs.Replicas}, nil
}
