package coordinator

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

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

// TestRegisterWithoutIPv6: a node that registers with no_ipv6 (a TUN node
// where IPv6 is disabled) gets an IPv4 address and no IPv6 one: not in its
// answer, not in any peer's map (full or upsert), not in the admin API's
// JSON, also after a restart; a node registered without the field (an
// older node) still gets both.
func TestRegisterWithoutIPv6(t *testing.T) {
	e := newEnv(t, Config{})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true}).Key
	peer := e.register(key, "peer")
	if !peer.reg.Node.IPv6.IsValid() {
		t.Fatalf("a node registered without no_ipv6 got no IPv6: %+v", peer.reg.Node)
	}
	ms := peer.connect("")
	if m := ms.nextChange(5 * time.Second); m.Type != meshapi.MsgFull {
		t.Fatalf("first line %+v, want full", m)
	}

	var reg meshapi.RegisterResponse
	status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: key, Hostname: "v4only", PublicKey: randomKey(), NoIPv6: true}, &reg)
	if status != http.StatusOK {
		t.Fatalf("register with no_ipv6: %d %+v", status, er)
	}
	if !reg.Node.IPv4.IsValid() || reg.Node.IPv6.IsValid() {
		t.Fatalf("register with no_ipv6: ipv4 %v, ipv6 %v; want an IPv4 address only", reg.Node.IPv4, reg.Node.IPv6)
	}
	m := ms.nextChange(5 * time.Second)
	if m.Type != meshapi.MsgUpsert || len(m.Peers) != 1 || m.Peers[0].ID != reg.Node.ID || m.Peers[0].IPv6.IsValid() {
		t.Fatalf("the peer's map: %+v; want an upsert of node %d without IPv6", m, reg.Node.ID)
	}

	check := func(when string) {
		t.Helper()
		raw := adminNodesJSON(t, e.admin.URL)
		for _, n := range raw {
			_, has := n["ipv6"]
			if want := n["name"] != "v4only"; has != want {
				t.Errorf("%s: admin node %v: ipv6 present %v, want %v", when, n["name"], has, want)
			}
		}
		full := peer.connect("").nextChange(5 * time.Second)
		if full.Type != meshapi.MsgFull || len(full.Peers) != 1 || full.Peers[0].Name != "v4only" || full.Peers[0].IPv6.IsValid() ||
			full.Peers[0].IPv4 != reg.Node.IPv4 {
			t.Errorf("%s: the peer's full map %+v; want v4only with %v and no IPv6", when, full.Peers, reg.Node.IPv4)
		}
	}
	check("registered")
	e.restart()
	check("after a restart")
}

// adminNodesJSON is GET /admin/v1/nodes as raw JSON objects, so a field's
// absence shows.
func adminNodesJSON(t *testing.T, base string) []map[string]any {
	t.Helper()
	resp, err := http.Get(base + meshapi.PathAdminNodes)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d, %v", meshapi.PathAdminNodes, resp.StatusCode, err)
	}
	return out
}
