package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

func TestNameCollisionsAndFreeing(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	var got []string
	var nodes []*client
	for _, h := range []string{"Web", "web", "web.example.com", "WEB"} {
		c := e.register(k.Key, h)
		nodes = append(nodes, c)
		got = append(got, c.reg.Node.Name)
	}
	if want := "web web-1 web-2 web-3"; strings.Join(got, " ") != want {
		t.Fatalf("names %q, want %q", strings.Join(got, " "), want)
	}
	if n := nodes[0].reg.Node; n.FQDN != "web.mesh.internal" || n.Hostname != "Web" {
		t.Fatalf("fqdn %q hostname %q", n.FQDN, n.Hostname)
	}
	// Deleting web-1 frees it at once: the next "web" takes the lowest free.
	if _, err := e.ac.DeleteNode(context.Background(), "web-1"); err != nil {
		t.Fatal(err)
	}
	if c := e.register(k.Key, "web"); c.reg.Node.Name != "web-1" {
		t.Fatalf("after deleting web-1 the next web got %q", c.reg.Node.Name)
	}
	if _, err := e.ac.DeleteNode(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	if c := e.register(k.Key, "web"); c.reg.Node.Name != "web" {
		t.Fatalf("after deleting web the next web got %q", c.reg.Node.Name)
	}
}

func TestIPPoolReuse(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	a, b, c := e.register(k.Key, "a"), e.register(k.Key, "b"), e.register(k.Key, "c")
	if a.reg.Node.IPv4.String() != "100.64.0.1" || c.reg.Node.IPv4.String() != "100.64.0.3" {
		t.Fatalf("addresses %s %s", a.reg.Node.IPv4, c.reg.Node.IPv4)
	}
	if !a.reg.Prefixes[1].Contains(a.reg.Node.IPv6) || a.reg.Node.IPv6 == b.reg.Node.IPv6 {
		t.Fatalf("IPv6 %s not in %s or not unique", a.reg.Node.IPv6, a.reg.Prefixes[1])
	}
	// b logs out (ephemeral: deleted at once); its addresses go to the next node.
	if status, er, out := b.logout(nil); status != http.StatusOK || !out.Deleted {
		t.Fatalf("logout: %d %+v %+v", status, er, out)
	}
	d := e.register(k.Key, "d")
	if d.reg.Node.IPv4 != b.reg.Node.IPv4 || d.reg.Node.IPv6 != b.reg.Node.IPv6 {
		t.Fatalf("after b (%s) left, d got %s: freed addresses must be reused", b.reg.Node.IPv4, d.reg.Node.IPv4)
	}
	// Node IDs are never reused.
	if d.id() <= c.id() {
		t.Fatalf("d has id %d, not above c's %d", d.id(), c.id())
	}
	// The ULA prefix is the database's, kept across restarts.
	e.restart()
	f := e.register(k.Key, "f")
	if f.reg.Prefixes[1] != a.reg.Prefixes[1] {
		t.Fatalf("ULA prefix changed across restart: %s -> %s", a.reg.Prefixes[1], f.reg.Prefixes[1])
	}
	if f.reg.Node.IPv4.String() != "100.64.0.4" || f.id() <= d.id() {
		t.Fatalf("after restart: %s id %d", f.reg.Node.IPv4, f.id())
	}
}

func TestRefusedRegistrationLeaksNothing(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{})
	first := e.register(k.Key, "web")
	// The one-off key is used; a duplicate public key is refused too.
	if _, status, _ := e.tryRegister(k.Key, "web"); status != http.StatusUnauthorized {
		t.Fatalf("used key: %d", status)
	}
	k2 := e.createKey(meshapi.KeyCreateRequest{})
	status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: k2.Key, Hostname: "web", PublicKey: first.reg.Node.PublicKey}, nil)
	if status != http.StatusConflict || er.Code != meshapi.ErrConflict {
		t.Fatalf("duplicate public key: %d %+v", status, er)
	}
	for _, body := range []string{`{"auth_key":"` + k2.Key + `","hostname":"web"}`, `{"auth_key":"` + k2.Key + `","public_key":"AAAA"}`, `not json`} {
		if status, _ := do(t, "POST", e.api.URL+meshapi.PathRegister, "", []byte(body), nil); status != http.StatusBadRequest {
			t.Fatalf("body %s: %d, want 400", body, status)
		}
	}
	// Nothing was consumed: k2 still registers, with the next name and address.
	c := e.register(k2.Key, "web")
	if c.reg.Node.Name != "web-1" || c.reg.Node.IPv4.String() != "100.64.0.2" || len(e.nodes()) != 2 {
		t.Fatalf("after refusals: %s %s, %d nodes", c.reg.Node.Name, c.reg.Node.IPv4, len(e.nodes()))
	}
}

func TestNameReclaim(t *testing.T) {
	// A long grace: the dropped node is still in it when the newcomer comes,
	// as with a container restarting at once, and replicas registered
	// together stay within it.
	e := newEnv(t, Config{ReconnectGrace: 30 * time.Second})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	other := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})

	// A crash-looping container: connected, dropped without logout.
	old := e.register(key.Key, "web")
	old.connect("").close()
	e.streamGone(old)
	// While it is offline (or in its grace), a newcomer of the same key
	// takes the plain name and the stale node is deleted (replaced).
	fresh := e.register(key.Key, "web")
	if fresh.reg.Node.Name != "web" {
		t.Fatalf("newcomer got %q, want the reclaimed plain name", fresh.reg.Node.Name)
	}
	ev := e.waitEvent(5*time.Second, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == old.id() })
	if ev.Reason != meshapi.ReasonReplaced {
		t.Fatalf("stale node deleted with reason %q, want replaced", ev.Reason)
	}
	if status, _ := do(t, "GET", e.api.URL+meshapi.PathMap, old.reg.Secret, nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("the replaced node's secret still works: %d", status)
	}

	// Not reclaimed: the holder is online.
	fresh.connect("")
	e.waitEvent(5*time.Second, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOnline && ev.NodeID == fresh.id() })
	if c := e.register(key.Key, "web"); c.reg.Node.Name != "web-1" {
		t.Fatalf("online holder: newcomer got %q, want web-1", c.reg.Node.Name)
	}
	// Not reclaimed: another key. (Each holder below has dropped its stream
	// and the server has noticed, so only the rule under test keeps it.)
	db := e.register(key.Key, "db")
	db.connect("").close()
	e.streamGone(db)
	if c := e.register(other.Key, "db"); c.reg.Node.Name != "db-1" {
		t.Fatalf("other key: newcomer got %q, want db-1", c.reg.Node.Name)
	}
	// Not reclaimed: the holder is not ephemeral.
	p := e.register(plain.Key, "api")
	p.connect("").close()
	e.streamGone(p)
	if c := e.register(plain.Key, "api"); c.reg.Node.Name != "api-1" {
		t.Fatalf("non-ephemeral holder: newcomer got %q, want api-1", c.reg.Node.Name)
	}
	// Not reclaimed: replicas starting together (registered, not yet
	// connected, within the grace) do not evict each other.
	r1 := e.register(key.Key, "job")
	if r2 := e.register(key.Key, "job"); r2.reg.Node.Name != "job-1" {
		t.Fatalf("simultaneous replicas: second got %q, want job-1", r2.reg.Node.Name)
	}
	_ = r1
	for _, n := range e.nodes() {
		if n.ID == old.id() {
			t.Fatal("the replaced node is still listed")
		}
	}
}

func TestPublicKeyReuse(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: 30 * time.Second})
	eph := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})

	// The same machine back after a crash (same key, same WireGuard key):
	// the stale registration gives way.
	old := e.register(eph.Key, "box")
	old.connect("").close()
	e.streamGone(old)
	var back meshapi.RegisterResponse
	status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: eph.Key, Hostname: "box", PublicKey: old.reg.Node.PublicKey}, &back)
	if status != http.StatusOK || back.Node.Name != "box" {
		t.Fatalf("same machine back: %d %+v %+v", status, er, back.Node)
	}
	if ev := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == old.id() }); ev.Reason != meshapi.ReasonReplaced {
		t.Fatalf("stale holder deleted with %q", ev.Reason)
	}
	// A live node's key is never taken.
	live := e.register(plain.Key, "live")
	live.connect("")
	status, er = do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: plain.Key, Hostname: "thief", PublicKey: live.reg.Node.PublicKey}, nil)
	if status != http.StatusConflict {
		t.Fatalf("taking a live node's key: %d %+v", status, er)
	}
	// A logged-out node's key is free again (the node stays listed).
	if status, _, _ := live.logout(nil); status != http.StatusOK {
		t.Fatal("logout failed")
	}
	status, er = do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: plain.Key, Hostname: "again", PublicKey: live.reg.Node.PublicKey}, nil)
	if status != http.StatusOK {
		t.Fatalf("re-registering a logged-out node's key: %d %+v", status, er)
	}
	// Deleting the logged-out node does not free the key of the new one.
	if _, err := e.ac.DeleteNode(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	status, _ = do(t, "POST", e.api.URL+meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: plain.Key, Hostname: "third", PublicKey: live.reg.Node.PublicKey}, nil)
	if status != http.StatusConflict {
		t.Fatalf("after deleting the old holder, the new holder's key was free: %d", status)
	}
}
