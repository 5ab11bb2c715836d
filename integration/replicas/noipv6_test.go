package replicas_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/pgtest"
	"github.com/meshinit/meshinit/meshapi"
)

// A node registered with no_ipv6 on replica a has no IPv6 address on every
// replica: none in the database (NULL), none in the node list of b, none in
// the map a stream on b carries. Deleted, its address is free on b too: the
// next node registered there takes it, with its IPv6 pair.
func TestNodeWithoutIPv6OnEveryReplica(t *testing.T) {
	harness.Integration(t)
	cs, db := startReplicas(t, pgtest.Shared(t), 2, coordtest.Options{})
	a, b := cs[0], cs[1]
	key := a.CreateKey(t, "--ephemeral", "--reusable")

	_, secret := register(t, b.URL, key, "watcher", 1)
	st := openStream(t, b.URL, secret, 0, "")

	status, body := call(t, http.MethodPost, a.URL, meshapi.PathRegister, "",
		meshapi.RegisterRequest{AuthKey: key, Hostname: "v4only", PublicKey: pubKey(2), Secret: newSecret(t), NoIPv6: true})
	var reg meshapi.RegisterResponse
	if status != http.StatusOK || json.Unmarshal(body, &reg) != nil {
		t.Fatalf("register with no_ipv6 on a: %d %s", status, body)
	}
	if !reg.Node.IPv4.IsValid() || reg.Node.IPv6.IsValid() {
		t.Fatalf("register with no_ipv6: ipv4 %v, ipv6 %v", reg.Node.IPv4, reg.Node.IPv6)
	}
	harness.Eventually(t, 30*time.Second, "v4only in the watcher's stream on b", func() (bool, string) {
		p, ok := st.peers()[reg.Node.ID]
		return ok, fmt.Sprintf("%+v", p)
	})
	if p := st.peers()[reg.Node.ID]; p.IPv4 != reg.Node.IPv4 || p.IPv6.IsValid() {
		t.Errorf("the stream on b carries v4only with %v and %v; want %v and no IPv6", p.IPv4, p.IPv6, reg.Node.IPv4)
	}
	if n, ok := b.Node(t, "v4only"); !ok || n.IPv6.IsValid() {
		t.Errorf("b's node list: %+v, %v; want v4only without IPv6", n, ok)
	}
	var nulls int
	if err := sql(t, db, `SELECT count(*) FROM nodes WHERE name = 'v4only' AND ipv6 IS NULL`, &nulls); err != nil || nulls != 1 {
		t.Errorf("v4only's row with ipv6 NULL: %d, %v; want 1", nulls, err)
	}

	a.CLI(t, "nodes", "delete", "v4only")
	harness.Eventually(t, 30*time.Second, "v4only gone on b", func() (bool, string) {
		_, ok := b.Node(t, "v4only")
		return !ok, "still listed"
	})
	next, _ := register(t, b.URL, key, "next", 3)
	if next.IPv4 != reg.Node.IPv4 || !next.IPv6.IsValid() {
		t.Errorf("the next node on b got %v and %v; want v4only's freed %v and its IPv6 pair", next.IPv4, next.IPv6, reg.Node.IPv4)
	}
}
