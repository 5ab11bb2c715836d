package coordinator

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/meshapi"
)

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// authNode finds the node a request's secret belongs to. A secret only ever
// names its own node: there is no way to act on another.
func (s *Server) authNode(r *http.Request) (meshapi.NodeID, *apiError) {
	tok, ok := bearer(r)
	if !ok {
		return 0, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"missing \"Authorization: Bearer <node secret>\": register first (POST %s)", meshapi.PathRegister)
	}
	h, err := authkey.ParseNodeSecret(tok)
	if err != nil {
		return 0, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized, "%v", err)
	}
	id, e := s.nodeBySecret(h)
	if e != nil && s.rep != nil {
		// A replica may not have read yet what another one committed a
		// moment ago (the node registered there): catch up, look again.
		s.rep.catchUp(r.Context())
		id, e = s.nodeBySecret(h)
	}
	return id, e
}

func (s *Server) nodeBySecret(h authkey.Hash) (meshapi.NodeID, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.mesh.NodeBySecret(h)
	if n == nil {
		return 0, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"unknown node secret: the node was deleted (logout, gc, admin or replaced); register again")
	}
	if n.LoggedOut {
		return 0, loggedOut(n)
	}
	return n.ID, nil
}

// adminAllowed checks the admin token of a request that came over TCP.
func (s *Server) adminAllowed(r *http.Request) *apiError {
	if s.cfg.AdminToken == "" {
		return errorf(http.StatusForbidden, meshapi.ErrForbidden,
			"the admin API is not served over TCP: use the admin socket, or start the server with --admin-token (MESHCOORD_ADMIN_TOKEN)")
	}
	tok, ok := bearer(r)
	if !ok {
		return errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"missing \"Authorization: Bearer <admin token>\": set MESHCOORD_ADMIN_TOKEN")
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
		return errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized, "wrong admin token")
	}
	return nil
}
