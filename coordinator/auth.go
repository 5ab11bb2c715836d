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
func (s *Server) authNode(r *http.Request) (*node, *apiError) {
	tok, ok := bearer(r)
	if !ok {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"missing \"Authorization: Bearer <node secret>\": register first (POST %s)", meshapi.PathRegister)
	}
	h, err := authkey.ParseNodeSecret(tok)
	if err != nil {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized, "%v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.bySecret[h]
	if n == nil {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"unknown node secret: the node was deleted (logout, gc, admin or replaced); register again")
	}
	if n.LoggedOut {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrLoggedOut,
			"node %d (%s) is logged out: register again with an auth key", n.ID, n.Name)
	}
	return n, nil
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

// goneLocked re-checks, under the lock, a node that authNode found before
// the lock was released: it may have been deleted or logged out since.
func (s *Server) goneLocked(n *node) *apiError {
	switch {
	case s.nodes[n.ID] != n:
		return errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized,
			"node %d was deleted meanwhile: register again", n.ID)
	case n.LoggedOut:
		return errorf(http.StatusUnauthorized, meshapi.ErrLoggedOut,
			"node %d (%s) is logged out: register again with an auth key", n.ID, n.Name)
	}
	return nil
}
