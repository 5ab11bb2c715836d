package coordinator

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/meshapi"
)

func TestAdminOverTCPNeedsToken(t *testing.T) {
	e := newEnv(t, Config{})
	// No token configured: the TCP handler refuses admin calls outright.
	if status, er := do(t, "GET", e.api.URL+meshapi.PathAdminNodes, "", nil, nil); status != http.StatusForbidden || !strings.Contains(er.Message, "admin socket") {
		t.Fatalf("admin over TCP without a server token: %d %+v", status, er)
	}
	e.stop()
	e.cfg.AdminToken = "s3cret-admin-token"
	e.start()
	for tok, want := range map[string]int{"": http.StatusUnauthorized, "wrong": http.StatusUnauthorized, "s3cret-admin-token": http.StatusOK} {
		if status, er := do(t, "GET", e.api.URL+meshapi.PathAdminNodes, tok, nil, nil); status != want {
			t.Errorf("token %q: %d %+v, want %d", tok, status, er, want)
		}
	}
	ac, err := adminclient.NewHTTP(e.api.URL, "s3cret-admin-token", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.CreateKey(context.Background(), meshapi.KeyCreateRequest{}); err != nil {
		t.Fatalf("key creation over TCP with the token: %v", err)
	}
	// The node API never serves admin calls with a node secret.
	k := e.createKey(meshapi.KeyCreateRequest{})
	n := e.register(k.Key, "n")
	if status, _ := do(t, "GET", e.api.URL+meshapi.PathAdminNodes, n.reg.Secret, nil, nil); status != http.StatusUnauthorized {
		t.Fatalf("node secret as admin token: %d", status)
	}
}

func TestAdminNodeActions(t *testing.T) {
	e := newEnv(t, Config{})
	plain := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	eph := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	a, b := e.register(plain.Key, "a"), e.register(eph.Key, "b")
	ctx := context.Background()

	if n, err := e.ac.Node(ctx, "a"); err != nil || n.ID != a.id() {
		t.Fatalf("show by name: %+v %v", n, err)
	}
	if n, err := e.ac.Node(ctx, "2"); err != nil || n.ID != b.id() {
		t.Fatalf("show by id: %+v %v", n, err)
	}
	if _, err := e.ac.Node(ctx, "nope"); !isCode(err, meshapi.ErrNotFound) {
		t.Fatalf("show unknown: %v", err)
	}
	// rename: invalid, taken, fine.
	if _, err := e.ac.RenameNode(ctx, "a", "Not Valid"); !isCode(err, meshapi.ErrInvalidRequest) || !strings.Contains(err.Error(), "not-valid") {
		t.Fatalf("invalid rename: %v", err)
	}
	if _, err := e.ac.RenameNode(ctx, "a", "b"); !isCode(err, meshapi.ErrConflict) {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	r, err := e.ac.RenameNode(ctx, "a", "alpha")
	if err != nil || r.Node.Name != "alpha" || r.Node.FQDN != "alpha.mesh.internal" {
		t.Fatalf("rename: %+v %v", r, err)
	}
	if c := e.register(plain.Key, "a"); c.reg.Node.Name != "a" {
		t.Fatalf("old name not free after rename: %q", c.reg.Node.Name)
	}
	// expire: plain node logged out (listed), ephemeral deleted (reason admin).
	r, err = e.ac.ExpireNode(ctx, "alpha")
	if err != nil || r.Deleted || !r.Node.LoggedOut {
		t.Fatalf("expire plain: %+v %v", r, err)
	}
	r, err = e.ac.ExpireNode(ctx, "b")
	if err != nil || !r.Deleted {
		t.Fatalf("expire ephemeral: %+v %v", r, err)
	}
	if ev := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == b.id() }); ev.Reason != meshapi.ReasonAdmin {
		t.Fatalf("expired ephemeral deleted with reason %q", ev.Reason)
	}
	// delete: gone, reason admin.
	if r, err := e.ac.DeleteNode(ctx, "alpha"); err != nil || !r.Deleted {
		t.Fatalf("delete: %+v %v", r, err)
	}
	if ev := e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventDeleted && ev.NodeID == a.id() }); ev.Reason != meshapi.ReasonAdmin {
		t.Fatalf("delete reason %q", ev.Reason)
	}
	if _, err := e.ac.DeleteNode(ctx, "alpha"); !isCode(err, meshapi.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestEventsInOrderAndFollow(t *testing.T) {
	e := newEnv(t, Config{ReconnectGrace: 50 * time.Millisecond})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	got := make(chan meshapi.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.ac.Events(ctx, 0, true, func(ev meshapi.Event) error { got <- ev; return nil })

	n := e.register(k.Key, "n")
	n.connect("").next(wait)
	e.drop(n)
	e.advance(50 * time.Millisecond)
	e.waitEvent(wait, func(ev meshapi.Event) bool { return ev.Type == meshapi.EventOffline })
	n.connect("").next(wait)
	n.logout(nil)
	want := []string{"registered", "online", "offline", "online", "deleted"}
	var prev meshapi.Event
	for i, typ := range want {
		select {
		case ev := <-got:
			if string(ev.Type) != typ || ev.NodeID != n.id() || ev.Name != "n" {
				t.Fatalf("event %d = %+v, want %s", i, ev, typ)
			}
			if i > 0 && (ev.Seq != prev.Seq+1 || ev.Time.Before(prev.Time)) {
				t.Fatalf("event %+v after %+v: not in order", ev, prev)
			}
			if typ == "deleted" && ev.Reason != meshapi.ReasonLogout {
				t.Fatalf("deleted reason %q", ev.Reason)
			}
			prev = ev
		case <-time.After(wait):
			t.Fatalf("followed stream stopped after %d events", i)
		}
	}
	// since skips the history before it.
	var after []meshapi.Event
	e.ac.Events(ctx, 3, false, func(ev meshapi.Event) error { after = append(after, ev); return nil })
	if len(after) != 2 || after[0].Seq != 4 {
		t.Fatalf("events since 3: %+v", after)
	}
}

func TestJSONErrorsForUnknownRoutesAndMethods(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string // the Allow header of a 405
	}{
		{"GET", "/nope", http.StatusNotFound, ""},
		{"GET", meshapi.PathRegister, http.StatusMethodNotAllowed, "POST"},
		{"DELETE", meshapi.PathMap, http.StatusMethodNotAllowed, "GET"},
		{"POST", meshapi.PathHealth, http.StatusMethodNotAllowed, "GET"},
		{"PUT", meshapi.PathAdminKeys, http.StatusMethodNotAllowed, "GET, POST"},
	} {
		status, er := do(t, tc.method, e.api.URL+tc.path, "", nil, nil)
		if status != tc.status || er.Message == "" {
			t.Errorf("%s %s: %d %+v, want %d with a message", tc.method, tc.path, status, er, tc.status)
		}
		if tc.allow != "" {
			req, _ := http.NewRequest(tc.method, e.api.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	}
	big := strings.Repeat("x", meshapi.MaxBodyBytes+10)
	if status, er := do(t, "POST", e.api.URL+meshapi.PathRegister, "", []byte(`{"hostname":"`+big+`"}`), nil); status != http.StatusRequestEntityTooLarge || er.Code != meshapi.ErrTooLarge {
		t.Fatalf("huge body: %d %+v", status, er)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true})
	n := e.register(k.Key, "m")
	n.connect("").next(wait)
	n.logout(nil)
	var h Health
	if status, _ := do(t, "GET", e.api.URL+meshapi.PathHealth, "", nil, &h); status != http.StatusOK || h.Status != "ok" || h.Epoch != e.s.Epoch() {
		t.Fatalf("healthz: %d %+v", status, h)
	}
	resp, err := http.Get(e.api.URL + meshapi.PathMetrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`meshcoord_nodes{state="online"} 0`,
		`meshcoord_node_deletions_total{reason="logout"} 1`,
		`meshcoord_node_deletions_total{reason="gc"} 0`,
		`meshcoord_registrations_total{result="ok"} 1`,
		`meshcoord_map_streams_total{start="full"} 1`,
		`meshcoord_gc_lag_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
