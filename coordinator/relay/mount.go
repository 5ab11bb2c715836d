package relay

import (
	"net/http"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/meshapi"
)

// ForCoordinator returns a relay whose clients are coord's nodes: it
// authenticates with their node secrets, closes a node's connection when
// coord deletes or logs the node out, and reports on coord's /metrics.
// cfg.Authenticate and cfg.Active are set here.
func ForCoordinator(coord *coordinator.Server, cfg Config) (*Server, error) {
	cfg.Authenticate = coord.AuthenticateRelay
	cfg.Active = coord.NodeActive
	s := New(cfg)
	if err := coord.RegisterMetrics(s.Metrics()); err != nil {
		return nil, err
	}
	coord.OnNodeGone(s.Disconnect)
	return s, nil
}

// Handler serves the relay at meshapi.PathRelay and everything else with
// next (the coordinator's Handler).
func (s *Server) Handler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(meshapi.PathRelay, s)
	mux.Handle("/", next)
	return mux
}
