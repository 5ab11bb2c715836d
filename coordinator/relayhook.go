package coordinator

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshinit/meshinit/coordinator/mesh"
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
