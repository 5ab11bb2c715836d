package coordinator

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/names"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// The admin API: keys, nodes, events. Served on the admin socket, and over
// TCP only with the admin token (see Handler).

const (
	maxTags           = 16
	maxDescription    = 256
	maxKeyExpiry      = 100 * 365 * 24 * time.Hour
	minEphemeralAfter = time.Second
)

// validateKeyRequest checks a key creation body; it is also the fuzz
// target's oracle for what a good body is.
func validateKeyRequest(req *meshapi.KeyCreateRequest) *apiError {
	if len(req.Tags) > maxTags {
		return badRequest("tags: %d given, at most %d allowed", len(req.Tags), maxTags)
	}
	for _, t := range req.Tags {
		name, ok := strings.CutPrefix(t, "tag:")
		if !ok || !names.Valid(name) {
			return badRequest("tag %q: want tag:<name> with a name of lowercase letters, digits and '-' (tag:ci)", t)
		}
	}
	if len(req.Description) > maxDescription || !utf8.ValidString(req.Description) {
		return badRequest("description: want valid UTF-8 of at most %d bytes", maxDescription)
	}
	if time.Duration(req.Expiry) > maxKeyExpiry {
		return badRequest("expiry %v: at most 100 years; omit it for a key that never expires", req.Expiry)
	}
	if req.EphemeralTimeout != 0 {
		if !req.Ephemeral {
			return badRequest("ephemeral_timeout only applies to ephemeral keys: add --ephemeral or drop --ephemeral-timeout")
		}
		if d := time.Duration(req.EphemeralTimeout); d < minEphemeralAfter || d > maxKeyExpiry {
			return badRequest("ephemeral_timeout %v: want between 1s and 100 years", req.EphemeralTimeout)
		}
	}
	return nil
}

func (s *Server) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
	var req meshapi.KeyCreateRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, decodeError(err))
		return
	}
	if e := validateKeyRequest(&req); e != nil {
		writeError(w, e)
		return
	}
	k, err := authkey.New()
	if err != nil {
		writeError(w, errorf(http.StatusInternalServerError, meshapi.ErrInternal, "%v", err))
		return
	}
	now := s.clock.Now()
	rec := store.KeyRecord{
		ID: k.ID, Hash: k.Hash(), Description: req.Description, Ephemeral: req.Ephemeral,
		Reusable: req.Reusable, Tags: slices.Clone(req.Tags), Created: now,
		EphemeralTimeout: time.Duration(req.EphemeralTimeout),
	}
	if req.Expiry != 0 {
		rec.Expires = now.Add(time.Duration(req.Expiry))
	}
	s.mu.Lock()
	if e := s.refuseLocked(); e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	ak := &key{KeyRecord: rec}
	s.keys[k.ID] = ak
	b := s.w.Enqueue(store.PutKey(rec))
	view := ak.api(now)
	s.mu.Unlock()
	if s.writeWhenStored(w, r, b, http.StatusCreated, meshapi.KeyCreateResponse{AuthKey: view, Key: k.String()}) {
		s.log.Info("auth key created", "key", k.ID, "ephemeral", rec.Ephemeral, "reusable", rec.Reusable)
	}
}

func (s *Server) handleKeyList(w http.ResponseWriter, r *http.Request) {
	now := s.clock.Now()
	s.mu.Lock()
	out := make([]meshapi.AuthKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, k.api(now))
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b meshapi.AuthKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleKeyRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !authkey.ValidID(id) {
		writeError(w, badRequest("key id %q: want the 16 hex digits shown by \"meshcoord keys list\"", id))
		return
	}
	now := s.clock.Now()
	s.mu.Lock()
	if e := s.refuseLocked(); e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	k := s.keys[id]
	if k == nil {
		s.mu.Unlock()
		writeError(w, notFound("no auth key %s: see \"meshcoord keys list\"", id))
		return
	}
	revoking := k.Revoked.IsZero()
	if revoking {
		k.Revoked = now
		s.w.Enqueue(store.PutKey(k.KeyRecord))
	}
	view := k.api(now)
	b := s.w.Barrier()
	s.mu.Unlock()
	if s.writeWhenStored(w, r, b, http.StatusOK, view) && revoking {
		s.log.Info("auth key revoked", "key", id)
	}
}

func (s *Server) handleNodeList(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	out := make([]meshapi.Node, 0, len(s.nodes))
	for _, n := range s.nodes {
		out = append(out, n.view())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b meshapi.Node) int { return compareIDs(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, out)
}

func compareIDs(a, b meshapi.NodeID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lookupLocked finds a node by id or, failing that, by name.
func (s *Server) lookupLocked(ref string) (*node, *apiError) {
	if id, err := strconv.ParseUint(ref, 10, 64); err == nil {
		if n := s.nodes[meshapi.NodeID(id)]; n != nil {
			return n, nil
		}
	}
	if n := s.byName[strings.ToLower(ref)]; n != nil {
		return n, nil
	}
	return nil, notFound("no node with id or name %q: see \"meshcoord nodes list\"", ref)
}

func (s *Server) handleNodeShow(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n, e := s.lookupLocked(r.PathValue("ref"))
	var v meshapi.Node
	if n != nil {
		v = n.view()
	}
	s.mu.Unlock()
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// nodeAction runs change on the node named in the path and answers with the
// node as it was left, once that is stored.
func (s *Server) nodeAction(w http.ResponseWriter, r *http.Request, change func(n *node, now time.Time) (deleted bool, e *apiError)) {
	s.mu.Lock()
	n, e := s.lookupLocked(r.PathValue("ref"))
	if e == nil {
		e = s.refuseLocked()
	}
	if e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	deleted, e := change(n, s.clock.Now())
	if e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	resp := meshapi.NodeActionResponse{Node: n.view(), Deleted: deleted}
	b := s.w.Barrier()
	s.mu.Unlock()
	s.writeWhenStored(w, r, b, http.StatusOK, resp)
}

func (s *Server) handleNodeDelete(w http.ResponseWriter, r *http.Request) {
	s.nodeAction(w, r, func(n *node, now time.Time) (bool, *apiError) {
		s.deleteLocked(n, meshapi.ReasonAdmin, "deleted by admin", now)
		return true, nil
	})
}

// handleNodeExpire ends a node's session as its own logout would, with
// reason admin: an ephemeral node is deleted, any other is logged out.
func (s *Server) handleNodeExpire(w http.ResponseWriter, r *http.Request) {
	s.nodeAction(w, r, func(n *node, now time.Time) (bool, *apiError) {
		if n.LoggedOut {
			return false, nil
		}
		return s.logoutLocked(n, meshapi.ReasonAdmin, "expired by admin", now), nil
	})
}

func (s *Server) handleNodeRename(w http.ResponseWriter, r *http.Request) {
	var req meshapi.RenameRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, decodeError(err))
		return
	}
	if !names.Valid(req.Name) {
		writeError(w, badRequest("name %q is not a DNS label (lowercase letters, digits, '-', at most 63): try %q", req.Name, names.Sanitize(req.Name)))
		return
	}
	s.nodeAction(w, r, func(n *node, now time.Time) (bool, *apiError) {
		if n.Name == req.Name {
			return false, nil
		}
		if other := s.byName[req.Name]; other != nil {
			return false, errorf(http.StatusConflict, meshapi.ErrConflict, "name %q is held by node %d", req.Name, other.ID)
		}
		old := n.Name
		delete(s.byName, old)
		n.Name, n.FQDN = req.Name, s.fqdn(req.Name)
		s.byName[n.Name] = n
		n.changed()
		s.w.Enqueue(store.PutNode(n.record()))
		s.emitLocked(meshapi.EventRenamed, n, "", old+" -> "+n.Name, now)
		if !n.LoggedOut {
			s.publishUpsertLocked(n, true)
		}
		return false, nil
	})
}
