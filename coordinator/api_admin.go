package coordinator

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/names"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// The admin API: keys, nodes, events, policy. Served on the admin socket,
// and over TCP only with the admin token (see Handler).

// adminAPI holds the admin API's handlers, apart from the Server's own
// methods: they only translate HTTP to the Server's commands and reads.
type adminAPI struct{ s *Server }

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

func (a adminAPI) handleKeyCreate(w http.ResponseWriter, r *http.Request) {
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
	var view meshapi.AuthKey
	b, e := a.s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		rec := store.KeyRecord{
			ID: k.ID, Hash: k.Hash(), Description: req.Description, Ephemeral: req.Ephemeral,
			Reusable: req.Reusable, Tags: slices.Clone(req.Tags), Created: now,
			EphemeralTimeout: time.Duration(req.EphemeralTimeout),
		}
		if req.Expiry != 0 {
			rec.Expires = now.Add(time.Duration(req.Expiry))
		}
		ak, ch := m.CreateKey(rec, now)
		view = ak.API(now)
		return ch, nil
	})
	if e != nil {
		writeError(w, e)
		return
	}
	if a.s.writeWhenStored(w, r, b, http.StatusCreated, meshapi.KeyCreateResponse{AuthKey: view, Key: k.String()}) {
		a.s.log.Info("auth key created", "key", k.ID, "ephemeral", req.Ephemeral, "reusable", req.Reusable)
	}
}

func (a adminAPI) handleKeyList(w http.ResponseWriter, r *http.Request) {
	var out []meshapi.AuthKey
	a.s.read(func(m *mesh.Mesh) {
		now := a.s.clock.Now()
		m.Keys(func(k *mesh.Key) { out = append(out, k.API(now)) })
	})
	slices.SortFunc(out, func(a, b meshapi.AuthKey) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	writeJSON(w, http.StatusOK, mesh.NonNil(out))
}

func (a adminAPI) handleKeyRevoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !authkey.ValidID(id) {
		writeError(w, badRequest("key id %q: want the 16 hex digits shown by \"meshcoord keys list\"", id))
		return
	}
	var view meshapi.AuthKey
	var revoking bool
	b, e := a.s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		k, ch := m.RevokeKey(id, now)
		if k == nil {
			return nil, notFound("no auth key %s: see \"meshcoord keys list\"", id)
		}
		view, revoking = k.API(now), len(ch) > 0
		return ch, nil
	})
	if e != nil {
		writeError(w, e)
		return
	}
	if a.s.writeWhenStored(w, r, b, http.StatusOK, view) && revoking {
		a.s.log.Info("auth key revoked", "key", id)
	}
}

func (a adminAPI) handleNodeList(w http.ResponseWriter, r *http.Request) {
	var out []meshapi.Node
	a.s.read(func(m *mesh.Mesh) {
		out = make([]meshapi.Node, 0, len(m.Nodes()))
		for _, n := range m.Nodes() {
			out = append(out, n.View())
		}
	})
	slices.SortFunc(out, func(a, b meshapi.Node) int { return cmp.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, out)
}

// lookup finds a node by id or, failing that, by name.
func lookup(m *mesh.Mesh, ref string) (*mesh.Node, *apiError) {
	if id, err := strconv.ParseUint(ref, 10, 64); err == nil {
		if n := m.Node(meshapi.NodeID(id)); n != nil {
			return n, nil
		}
	}
	if n := m.NodeByName(strings.ToLower(ref)); n != nil {
		return n, nil
	}
	return nil, notFound("no node with id or name %q: see \"meshcoord nodes list\"", ref)
}

func (a adminAPI) handleNodeShow(w http.ResponseWriter, r *http.Request) {
	var v meshapi.Node
	var e *apiError
	a.s.read(func(m *mesh.Mesh) {
		var n *mesh.Node
		if n, e = lookup(m, r.PathValue("ref")); n != nil {
			v = n.View()
		}
	})
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// nodeAction runs act on the node named in the path and answers with the
// node as it was left, once that is stored.
func (a adminAPI) nodeAction(w http.ResponseWriter, r *http.Request, act func(m *mesh.Mesh, n *mesh.Node, now time.Time) (mesh.Change, bool, *apiError)) {
	var resp meshapi.NodeActionResponse
	b, e := a.s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		n, e := lookup(m, r.PathValue("ref"))
		if e != nil {
			return nil, e
		}
		ch, deleted, e := act(m, n, now)
		if e != nil {
			return nil, e
		}
		resp = meshapi.NodeActionResponse{Node: n.View(), Deleted: deleted}
		return ch, nil
	})
	if e != nil {
		writeError(w, e)
		return
	}
	a.s.writeWhenStored(w, r, b, http.StatusOK, resp)
}

func (a adminAPI) handleNodeDelete(w http.ResponseWriter, r *http.Request) {
	a.nodeAction(w, r, func(m *mesh.Mesh, n *mesh.Node, now time.Time) (mesh.Change, bool, *apiError) {
		return m.Delete(n, meshapi.ReasonAdmin, "deleted by admin", now), true, nil
	})
}

// handleNodeExpire ends a node's session as its own logout would, with
// reason admin: an ephemeral node is deleted, any other is logged out.
func (a adminAPI) handleNodeExpire(w http.ResponseWriter, r *http.Request) {
	a.nodeAction(w, r, func(m *mesh.Mesh, n *mesh.Node, now time.Time) (mesh.Change, bool, *apiError) {
		if n.LoggedOut {
			return nil, false, nil
		}
		ch, deleted := m.Logout(n, meshapi.ReasonAdmin, "expired by admin", now)
		return ch, deleted, nil
	})
}

func (a adminAPI) handleNodeRename(w http.ResponseWriter, r *http.Request) {
	var req meshapi.RenameRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, decodeError(err))
		return
	}
	if !names.Valid(req.Name) {
		writeError(w, badRequest("name %q is not a DNS label (lowercase letters, digits, '-', at most 63): try %q", req.Name, names.Sanitize(req.Name)))
		return
	}
	a.nodeAction(w, r, func(m *mesh.Mesh, n *mesh.Node, now time.Time) (mesh.Change, bool, *apiError) {
		ch, e := m.Rename(n, req.Name, now)
		return ch, false, e
	})
}
