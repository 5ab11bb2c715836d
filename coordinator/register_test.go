package coordinator

import (
	"net/http"
	"testing"

	"github.com/meshinit/meshinit/meshapi"
)

// TestRegistrationRetryGetsTheSameNode: a node that retries its
// registration (its answer was lost, it timed out, the coordinator
// restarted) with the same node secret, auth key and public key gets the
// node its first attempt made: never a second node, never a second use of
// the key, never "key used" for a one-off key.
func TestRegistrationRetryGetsTheSameNode(t *testing.T) {
	e := newEnv(t, Config{})
	oneOff := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	req := meshapi.RegisterRequest{AuthKey: oneOff.Key, Hostname: "web", PublicKey: randomKey(), Secret: meshapi.NewNodeSecret()}
	register := func(r meshapi.RegisterRequest) (int, meshapi.Error, meshapi.RegisterResponse) {
		var out meshapi.RegisterResponse
		status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "", r, &out)
		return status, er, out
	}
	status, er, first := register(req)
	if status != http.StatusOK || first.Secret != req.Secret {
		t.Fatalf("first attempt: %d %+v (secret echoed: %v)", status, er, first.Secret == req.Secret)
	}
	check := func(when string) {
		t.Helper()
		status, er, again := register(req)
		if status != http.StatusOK || again.Node.ID != first.Node.ID || again.Node.Name != "web" ||
			again.Node.IPv4 != first.Node.IPv4 || again.Secret != req.Secret {
			t.Fatalf("retry %s: %d %+v, node %+v; want node %d again", when, status, er, again.Node, first.Node.ID)
		}
		nodes := e.nodes()
		keys, _ := e.ac.Keys(t.Context())
		if len(nodes) != 1 || len(keys) != 1 || keys[0].Uses != 1 {
			t.Fatalf("retry %s: %d nodes, key %+v; want one node and one use", when, len(nodes), keys)
		}
	}
	check("after the answer") // the answer was lost on the way
	e.restart()
	check("after a restart") // found by the stored hash of the secret

	// The node's own stream works with the secret either answer gave.
	ms, st, er := openStream(t, e.api.URL, req.Secret, "")
	if ms == nil {
		t.Fatalf("stream with the secret: %d %+v", st, er)
	}
	ms.close()

	// Only the same registration is repeated.
	reusable := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	for name, tc := range map[string]struct {
		change func(*meshapi.RegisterRequest)
		status int
		code   meshapi.ErrorCode
	}{
		"another public key": {func(r *meshapi.RegisterRequest) { r.PublicKey = randomKey() }, http.StatusConflict, meshapi.ErrConflict},
		"another auth key":   {func(r *meshapi.RegisterRequest) { r.AuthKey = reusable.Key }, http.StatusConflict, meshapi.ErrConflict},
		"a wrong auth key":   {func(r *meshapi.RegisterRequest) { r.AuthKey = oneOff.Key[:len(oneOff.Key)-4] + "0000" }, http.StatusUnauthorized, meshapi.ErrKeyInvalid},
		"a malformed secret": {func(r *meshapi.RegisterRequest) { r.Secret = "mnode-short" }, http.StatusBadRequest, meshapi.ErrInvalidRequest},
	} {
		r := req
		tc.change(&r)
		if status, er, _ := register(r); status != tc.status || er.Code != tc.code {
			t.Errorf("with %s: %d %+v, want %d %s", name, status, er, tc.status, tc.code)
		}
	}
	// A fresh secret is a new registration: the one-off key is used.
	fresh := req
	fresh.Secret, fresh.PublicKey = meshapi.NewNodeSecret(), randomKey()
	if status, er, _ := register(fresh); status != http.StatusUnauthorized || er.Code != meshapi.ErrKeyUsed {
		t.Fatalf("a new registration with the used one-off key: %d %+v", status, er)
	}
	// Once the node has logged out, its secret registers nothing.
	if status, _ := do(t, "POST", e.api.URL+meshapi.PathLogout, req.Secret, nil, nil); status != http.StatusOK {
		t.Fatalf("logout: %d", status)
	}
	if status, er, _ := register(req); status != http.StatusUnauthorized {
		t.Fatalf("retry after logout: %d %+v, want 401", status, er)
	}
	registered := 0
	for _, ev := range e.events() {
		if ev.Type == meshapi.EventRegistered {
			registered++
		}
	}
	if registered != 1 {
		t.Fatalf("%d registered events, want 1", registered)
	}
}
