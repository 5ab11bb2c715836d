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

// The reclaim window, on the fake clock: a holder absent for exactly the
// grace keeps its name; one nanosecond more and a newcomer of its key takes
// it. So a node in its grace (a blip, a reconnect) is never replaced.
const reclaimGrace = 5 * time.Second

// newcomer registers with key and hostname, checks the name it got, and
// logs it out again unless keep (so it does not hold a name afterwards).
func (e *env) newcomer(key, hostname, want string, keep bool) *client {
	e.t.Helper()
	c := e.register(key, hostname)
	if c.reg.Node.Name != want {
		e.t.Fatalf("newcomer %q at +%v got %q, want %q", hostname, e.now().Sub(e.start0()), c.reg.Node.Name, want)
	}
	if !keep {
		if status, _, _ := c.logout(nil); status != http.StatusOK {
			e.t.Fatalf("logout of the newcomer %s: %d", want, status)
		}
	}
	return c
}

func (e *env) start0() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

func (e *env) replaced(c *client) meshapi.Event {
	e.t.Helper()
	ev := deletedEvent(e, c.id())
	if ev.Reason != meshapi.ReasonReplaced {
		e.t.Fatalf("%s deleted with reason %q, want replaced", c.reg.Node.Name, ev.Reason)
	}
	return ev
}

func (e *env) listed(c *client) bool {
	_, ok := e.node(c.id())
	return ok
}

func TestNameReclaim(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: reclaimGrace})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})

	// A container killed hard (no logout) and started again.
	old := e.register(key.Key, "web")
	old.connect("").next(wait)
	dropped := e.drop(old)
	e.clock.AdvanceTo(dropped.Add(reclaimGrace - time.Nanosecond)) // in its grace: online
	e.newcomer(key.Key, "web", "web-1", false)
	e.clock.AdvanceTo(dropped.Add(reclaimGrace)) // offline, absent for exactly the grace
	e.newcomer(key.Key, "web", "web-1", false)
	if !e.listed(old) {
		t.Fatal("a node absent for no longer than the grace was replaced")
	}
	e.clock.AdvanceTo(dropped.Add(reclaimGrace + time.Nanosecond))
	fresh := e.newcomer(key.Key, "web", "web", true)
	if ev := e.replaced(old); !strings.Contains(ev.Detail, "web") {
		t.Fatalf("the replacement's event does not say which name: %+v", ev)
	}
	if status, _ := do(t, "GET", e.api.URL+meshapi.PathMap+"?since=x", old.reg.Secret, nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("the replaced node's secret still works: %d", status)
	}

	// An online holder is never replaced, however long it has been there.
	fresh.connect("").next(wait)
	e.advance(time.Hour)
	e.newcomer(key.Key, "web", "web-1", false)

	// A node that registered and has not connected yet gets one grace from
	// its registration: replicas that start together keep their names.
	first := e.register(key.Key, "job")
	registered := e.now()
	e.clock.AdvanceTo(registered.Add(reclaimGrace))
	e.newcomer(key.Key, "job", "job-1", false)
	e.clock.AdvanceTo(registered.Add(reclaimGrace + time.Nanosecond))
	e.newcomer(key.Key, "job", "job", true)
	e.replaced(first)
}

// TestReplicaKeepsItsSuffixedName: replicas of one hostname hold web,
// web-1, web-2; the one named web-1 is killed and comes back after the
// grace: it gets web-1 again, not web-3.
func TestReplicaKeepsItsSuffixedName(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: reclaimGrace})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	var replicas []*client
	for _, want := range []string{"web", "web-1", "web-2"} {
		r := e.newcomer(key.Key, "web", want, true)
		r.connect("").next(wait)
		replicas = append(replicas, r)
	}
	dropped := e.drop(replicas[1])
	e.clock.AdvanceTo(dropped.Add(reclaimGrace + time.Nanosecond))
	e.newcomer(key.Key, "web", "web-1", true)
	e.replaced(replicas[1])
}

// TestReclaimOnlyFromItsOwnKind: a stale holder gives way only to a
// newcomer of its own auth key, only if it is ephemeral, and only a name it
// got from the newcomer's hostname.
func TestReclaimOnlyFromItsOwnKind(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: reclaimGrace, EphemeralTimeout: 24 * time.Hour})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	other := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	db := e.register(key.Key, "db")
	api := e.register(plain.Key, "api")
	live := e.register(key.Key, "cache")
	live.connect("").next(wait)
	own := e.register(key.Key, "cache-1") // a hostname of its own, not a suffix given to "cache"
	e.advance(time.Hour)                  // all of them (but live) long absent

	e.newcomer(other.Key, "db", "db-1", false)       // another key
	e.newcomer(plain.Key, "api", "api-1", false)     // not ephemeral
	e.newcomer(key.Key, "cache", "cache-2", false)   // cache-1 is not one of cache's names
	e.newcomer(key.Key, "cache-1", "cache-1", false) // but its own hostname takes it
	for _, c := range []*client{db, api, live} {
		if !e.listed(c) {
			t.Fatalf("%s was replaced", c.reg.Node.Name)
		}
	}
	e.replaced(own)
}

// TestReclaimAfterRestart: after a coordinator restart, no holder can be
// replaced until one grace after the start, whether it was online when the
// coordinator went down (it may be reconnecting right now) or offline.
func TestReclaimAfterRestart(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: reclaimGrace, EphemeralTimeout: 24 * time.Hour})
	key := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	online := e.register(key.Key, "up")
	online.connect("").next(wait)
	offline := e.register(key.Key, "down")
	offline.connect("").next(wait)
	e.drop(offline)
	e.advance(time.Hour) // offline long before the restart
	e.stop()
	online.strm.close() // the coordinator is down: its streams are gone
	e.advance(time.Minute)
	started := e.now()
	e.start()
	e.clock.AdvanceTo(started.Add(reclaimGrace))
	e.newcomer(key.Key, "up", "up-1", false)
	e.newcomer(key.Key, "down", "down-1", false)
	e.clock.AdvanceTo(started.Add(reclaimGrace + time.Nanosecond))
	e.newcomer(key.Key, "up", "up", true)
	e.newcomer(key.Key, "down", "down", true)
	e.replaced(online)
	e.replaced(offline)
}

func TestPublicKeyReuse(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: reclaimGrace})
	eph := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	same := func(key, hostname string, pub meshapi.Key) (int, meshapi.Error, meshapi.RegisterResponse) {
		var out meshapi.RegisterResponse
		status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "",
			meshapi.RegisterRequest{AuthKey: key, Hostname: hostname, PublicKey: pub}, &out)
		return status, er, out
	}

	// The same machine back after a crash (same key, same WireGuard key):
	// refused while the old registration may still be alive, then the
	// stale registration gives way.
	old := e.register(eph.Key, "box")
	old.connect("").next(wait)
	dropped := e.drop(old)
	e.clock.AdvanceTo(dropped.Add(reclaimGrace))
	if status, er, _ := same(eph.Key, "box", old.reg.Node.PublicKey); status != http.StatusConflict {
		t.Fatalf("same public key within the grace: %d %+v, want 409", status, er)
	}
	e.clock.AdvanceTo(dropped.Add(reclaimGrace + time.Nanosecond))
	if status, er, back := same(eph.Key, "box", old.reg.Node.PublicKey); status != http.StatusOK || back.Node.Name != "box" {
		t.Fatalf("same machine back: %d %+v %+v", status, er, back.Node)
	}
	e.replaced(old)
	// A live node's key is never taken.
	live := e.register(plain.Key, "live")
	live.connect("")
	if status, er, _ := same(plain.Key, "thief", live.reg.Node.PublicKey); status != http.StatusConflict {
		t.Fatalf("taking a live node's key: %d %+v", status, er)
	}
	// A logged-out node's key is free again (the node stays listed).
	if status, _, _ := live.logout(nil); status != http.StatusOK {
		t.Fatal("logout failed")
	}
	if status, er, _ := same(plain.Key, "again", live.reg.Node.PublicKey); status != http.StatusOK {
		t.Fatalf("re-registering a logged-out node's key: %d %+v", status, er)
	}
	// Deleting the logged-out node does not free the key of the new one.
	if _, err := e.ac.DeleteNode(context.Background(), "live"); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := same(plain.Key, "third", live.reg.Node.PublicKey); status != http.StatusConflict {
		t.Fatalf("after deleting the old holder, the new holder's key was free: %d", status)
	}
}
