package relay

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// ForCoordinator returns a relay whose clients are coord's nodes: it
// authenticates with their node secrets, closes a node's connection when
// coord deletes or logs the node out, and reports on coord's /metrics.
// cfg.Authenticate and cfg.Active are set here, and cfg.Mesh when coord's
// store is shared by replicas (PostgreSQL): the relay then links with
// every replica in the replicas table, with the mesh key stored there.
func ForCoordinator(coord *coordinator.Server, cfg Config) (*Server, error) {
	cfg.Authenticate = coord.AuthenticateRelay
	cfg.Active = coord.NodeActive
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rm, err := coord.RelayMesh(ctx)
	if err != nil {
		return nil, fmt.Errorf("relay mesh: %w", err)
	}
	if rm == nil {
		cfg.Mesh = nil // no replicas to link with
	} else {
		mc := &MeshConfig{ID: rm.ID, Key: rm.Key, Peers: replicaPeers(rm.Replicas)}
		if cfg.Mesh != nil { // the caller's TLS and refresh
			mc.TLS, mc.Refresh = cfg.Mesh.TLS, cfg.Mesh.Refresh
		}
		cfg.Mesh = mc
	}
	s := New(cfg)
	if err := coord.RegisterMetrics(s.Metrics()); err != nil {
		return nil, err
	}
	coord.OnNodeGone(s.Disconnect)
	return s, nil
}

// replicaPeers reads the replicas table as relay peers.
func replicaPeers(list func(context.Context) ([]store.Replica, error)) func(context.Context) ([]Peer, error) {
	return func(ctx context.Context) ([]Peer, error) {
		rs, err := list(ctx)
		if err != nil {
			return nil, err
		}
		peers := make([]Peer, len(rs))
		for i, r := range rs {
			peers[i] = Peer{ID: r.ID, URL: r.URL}
		}
		return peers, nil
	}
}

// Handler serves the relay at meshapi.PathRelay and everything else with
// next (the coordinator's Handler).
func (s *Server) Handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(meshapi.PathRelay, s)
	mux.Handle("/", next)
	return mux
}
