package coordinator

import (
	"context"
	"net/http"
	"time"

	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/meshapi"
)

// The node-facing API (docs/protocol.md has the letter of it).

// nodeAPI holds the node API's handlers, apart from the Server's own
// methods: they translate HTTP to the Server's commands, and stream maps.
type nodeAPI struct{ s *Server }

func (a nodeAPI) handleRegister(w http.ResponseWriter, r *http.Request) {
	s := a.s
	var req meshapi.RegisterRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.metrics.registration("invalid_request")
		writeError(w, decodeError(err))
		return
	}
	resp, b, result, e := s.register(&req)
	if e != nil {
		s.metrics.registration(string(e.Code))
		writeError(w, e)
		return
	}
	// Answer only once the node is stored: a secret handed out must still
	// work after a coordinator crash. If the store is slow, the node is
	// registered all the same and a retry with the same secret gets it.
	if err := b.Wait(r.Context(), s.cfg.CommitTimeout); err != nil {
		s.metrics.registration("store")
		writeError(w, unavailable(err))
		return
	}
	s.metrics.registration(result)
	writeJSON(w, http.StatusOK, resp)
}

func (a nodeAPI) handleMap(w http.ResponseWriter, r *http.Request) {
	id, e := a.s.authNode(r)
	if e != nil {
		writeError(w, e)
		return
	}
	a.serveMap(w, r, id)
}

func (a nodeAPI) handleEndpoints(w http.ResponseWriter, r *http.Request) {
	id, e := a.s.authNode(r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req meshapi.EndpointsRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, decodeError(err))
		return
	}
	if e := validateEndpoints(req.Endpoints); e != nil {
		writeError(w, e)
		return
	}
	// Written behind: peers hear of it at once, the store soon.
	_, e = a.s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		n, e := a.s.activeLocked(id)
		if e != nil {
			return nil, e
		}
		return m.SetEndpoints(n, req.Endpoints, now), nil
	})
	if e != nil {
		writeError(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a nodeAPI) handleLogout(w http.ResponseWriter, r *http.Request) {
	s := a.s
	id, e := s.authNode(r)
	if e != nil {
		writeError(w, e)
		return
	}
	// The body is optional; when it names a node, it must be the caller.
	var req meshapi.LogoutRequest
	if e := decodeOptional(w, r, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.NodeID != 0 && req.NodeID != id {
		writeError(w, errorf(http.StatusForbidden, meshapi.ErrForbidden,
			"this secret belongs to node %d, not node %d: a node can only log itself out", id, req.NodeID))
		return
	}
	var deleted bool
	b, e := s.change(func(m *mesh.Mesh, now time.Time) (ch mesh.Change, e *apiError) {
		n, e := s.activeLocked(id)
		if e != nil {
			return nil, e
		}
		ch, deleted = m.Logout(n, meshapi.ReasonLogout, "logout", now)
		return ch, nil
	})
	if e != nil {
		writeError(w, e)
		return
	}
	s.writeWhenStored(w, r, b, http.StatusOK, meshapi.LogoutResponse{Deleted: deleted})
}

// writeWhenStored answers status with v once batch b is committed, or 503
// if the store does not take it within the commit timeout, and reports
// which. It waits even if the client hung up: the change is made either
// way, and is stored before the handler returns.
func (s *Server) writeWhenStored(w http.ResponseWriter, r *http.Request, b *commit.Batch, status int, v any) bool {
	if err := b.Wait(context.WithoutCancel(r.Context()), s.cfg.CommitTimeout); err != nil {
		writeError(w, unavailable(err))
		return false
	}
	writeJSON(w, status, v)
	return true
}
