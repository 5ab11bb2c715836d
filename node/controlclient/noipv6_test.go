package controlclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/internal/syncbuf"
	"github.com/meshinit/meshinit/meshapi"
)

// legacyRegisterRequest is the register body of a coordinator older than
// no_ipv6: its strict decoding refuses the field.
type legacyRegisterRequest struct {
	AuthKey   string   `json:"auth_key"`
	Hostname  string   `json:"hostname"`
	PublicKey string   `json:"public_key"`
	Endpoints []string `json:"endpoints,omitempty"`
	Secret    string   `json:"secret,omitempty"`
}

// front is a reverse proxy to the real coordinator that records register
// bodies and, when legacy, answers a body the older coordinator would not
// decode as it did: 400 invalid_request naming the unknown field.
func front(t *testing.T, co *coordinatortest.Server, legacy bool) (addr string, bodies func() []string) {
	t.Helper()
	target, err := url.Parse(co.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == meshapi.PathRegister {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			seen = append(seen, string(b))
			mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(b))
			if legacy {
				var old legacyRegisterRequest
				if err := meshapi.DecodeBytes(b, &old); err != nil {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					json.NewEncoder(w).Encode(meshapi.ErrorBody{Error: meshapi.Error{Code: meshapi.ErrInvalidRequest, Message: err.Error()}})
					return
				}
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// The client sends no_ipv6 when asked, and the coordinator then gives the
// node no IPv6 address; without it the field is not sent at all (what an
// older coordinator expects).
func TestRegisterSendsNoIPv6(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true})
	u, bodies := front(t, co, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := newTestClient(t, u, Options{}).Register(ctx, Registration{AuthKey: k.Key, Hostname: "v4only", PublicKey: pubKey(1), NoIPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Node.IPv4.IsValid() || resp.Node.IPv6.IsValid() {
		t.Fatalf("registered with NoIPv6: ipv4 %v, ipv6 %v; want an IPv4 address only", resp.Node.IPv4, resp.Node.IPv6)
	}
	both := register(t, newTestClient(t, u, Options{}), k.Key, "both", 2)
	if !both.Node.IPv6.IsValid() {
		t.Fatalf("registered without NoIPv6: no IPv6 address")
	}
	b := bodies()
	if len(b) != 2 || !strings.Contains(b[0], `"no_ipv6":true`) || strings.Contains(b[1], "no_ipv6") {
		t.Fatalf("register bodies on the wire:\n%s\nwant no_ipv6 in the first only", strings.Join(b, "\n"))
	}
}

// Against a coordinator older than no_ipv6 (its strict decoding refuses
// the field), the client registers as before, with both addresses, at
// once and once: one node, one warning.
func TestRegisterNoIPv6FallsBackForAnOlderCoordinator(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	k := co.CreateKey(meshapi.KeyCreateRequest{}) // one-off: a second node would be refused
	u, bodies := front(t, co, true)
	var buf syncbuf.Buffer
	c := newTestClient(t, u, Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Register(ctx, Registration{AuthKey: k.Key, Hostname: "v4only", PublicKey: pubKey(1), NoIPv6: true})
	if err != nil {
		t.Fatalf("registering with an older coordinator: %v", err)
	}
	if !resp.Node.IPv6.IsValid() {
		t.Fatalf("the older coordinator's answer: %+v", resp.Node)
	}
	if b := bodies(); len(b) != 2 || !strings.Contains(b[0], "no_ipv6") || strings.Contains(b[1], "no_ipv6") {
		t.Fatalf("register bodies on the wire:\n%s\nwant one with no_ipv6, then one without", strings.Join(b, "\n"))
	}
	if n := len(co.Nodes()); n != 1 {
		t.Fatalf("%d nodes, want 1", n)
	}
	if n := strings.Count(buf.String(), "does not know no_ipv6"); n != 1 {
		t.Errorf("the fallback logged %d times, want once:\n%s", n, buf.String())
	}
}
