package coordinator

import (
	"net/http"
	"slices"
	"strings"

	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// Handler serves the node API, /healthz and /metrics, and the admin API for
// requests that carry the admin token (refused when the server has none).
// It is what the TCP listener serves.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.nodeRoutes(mux)
	s.opsRoutes(mux)
	s.adminRoutes(mux, func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if e := s.adminAllowed(r); e != nil {
				writeError(w, e)
				return
			}
			h(w, r)
		}
	})
	mux.Handle("/", methods{})
	return mux
}

// AdminHandler serves the admin API without a token, plus /healthz and
// /metrics. It is what the admin socket (0600, local only) serves: being
// able to connect is the permission.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	s.opsRoutes(mux)
	s.adminRoutes(mux, func(h http.HandlerFunc) http.HandlerFunc { return h })
	mux.Handle("/", methods{})
	return mux
}

func (s *Server) nodeRoutes(mux *http.ServeMux) {
	node := nodeAPI{s}
	mux.Handle(meshapi.PathRegister, methods{"POST": node.handleRegister})
	mux.Handle(meshapi.PathMap, methods{"GET": node.handleMap})
	mux.Handle(meshapi.PathEndpoints, methods{"POST": node.handleEndpoints})
	mux.Handle(meshapi.PathLogout, methods{"POST": node.handleLogout})
}

func (s *Server) opsRoutes(mux *http.ServeMux) {
	mux.Handle(meshapi.PathHealth, methods{"GET": s.handleHealth})
	mux.Handle(meshapi.PathMetrics, methods{"GET": s.metrics.handler().ServeHTTP})
}

func (s *Server) adminRoutes(mux *http.ServeMux, gate func(http.HandlerFunc) http.HandlerFunc) {
	admin := adminAPI{s}
	mux.Handle(meshapi.PathAdminKeys, methods{"GET": gate(admin.handleKeyList), "POST": gate(admin.handleKeyCreate)})
	mux.Handle(meshapi.PathAdminKeys+"/{id}", methods{"DELETE": gate(admin.handleKeyRevoke)})
	mux.Handle(meshapi.PathAdminNodes, methods{"GET": gate(admin.handleNodeList)})
	mux.Handle(meshapi.PathAdminNodes+"/{ref}", methods{"GET": gate(admin.handleNodeShow), "DELETE": gate(admin.handleNodeDelete)})
	mux.Handle(meshapi.PathAdminNodes+"/{ref}/expire", methods{"POST": gate(admin.handleNodeExpire)})
	mux.Handle(meshapi.PathAdminNodes+"/{ref}/rename", methods{"POST": gate(admin.handleNodeRename)})
	mux.Handle(meshapi.PathAdminEvents, methods{"GET": gate(admin.handleEvents)})
	mux.Handle(meshapi.PathAdminPolicy, methods{"GET": gate(admin.handlePolicyGet), "PUT": gate(admin.handlePolicyPut), "DELETE": gate(admin.handlePolicyDelete)})
	mux.Handle(meshapi.PathAdminPolicyCheck, methods{"POST": gate(admin.handlePolicyCheck)})
}

// methods dispatches on the HTTP method and answers everything else with a
// JSON error (the mux's own 404/405 answers are plain text). Empty, it is
// the catch-all 404.
type methods map[string]http.HandlerFunc

func (m methods) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(m) == 0 {
		writeError(w, notFound("no such endpoint: %s %s (see docs/protocol.md)", r.Method, r.URL.Path))
		return
	}
	if h := m[r.Method]; h != nil {
		h(w, r)
		return
	}
	allowed := make([]string, 0, len(m))
	for k := range m {
		allowed = append(allowed, k)
	}
	slices.Sort(allowed)
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, errorf(http.StatusMethodNotAllowed, meshapi.ErrInvalidRequest,
		"method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
}

// Health is the body of /healthz.
type Health struct {
	Status string `json:"status"` // "ok" or "failing"
	Store  string `json:"store"`  // "ok" or "failing"
	Epoch  string `json:"epoch"`
	Nodes  int    `json:"nodes"`
	Online int    `json:"online"`
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", Store: "ok", Epoch: s.epoch}
	s.read(func(m *mesh.Mesh) {
		h.Nodes = len(m.Nodes())
		for _, n := range m.Nodes() {
			if n.Online {
				h.Online++
			}
		}
	})
	status := http.StatusOK
	if !s.metrics.storeHealthy() {
		h.Status, h.Store, status = "failing", "failing", http.StatusServiceUnavailable
	}
	writeJSON(w, status, h)
}
