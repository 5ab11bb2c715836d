package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// Only the coordinator can log a node out. A real HTTP server in front of
// the coordinator (front) answers 401 and 403 with an HTML body, as an
// auth proxy, a WAF or an ingress does; the node keeps retrying and stays
// in the mesh, and is fine once the front passes requests again.

func TestForeign401And403OnTheMapStreamAreRetried(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	f := newFront(t, co.URL)
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	n := startNodeAt(t, f.URL, key, "fronted")
	id := n.Self().ID
	for _, status := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		f.answer(meshapi.PathMap, status)
		before := f.foreignAnswers(meshapi.PathMap)
		f.cut() // the stream breaks; every reconnect now meets the front's answer
		eventually(t, fmt.Sprintf("three reconnects answered %d by the front", status), func() (bool, string) {
			got := f.foreignAnswers(meshapi.PathMap) - before
			return got >= 3, fmt.Sprintf("%d so far", got)
		})
		if st := n.Status(); st.State != ctlsock.StateUp {
			t.Fatalf("after foreign %d answers the node is %q, want still up", status, st.State)
		}
		if st := n.Status(); st.Coordinator.LastError == "" {
			t.Errorf("status does not say what the front answered: %+v", st.Coordinator)
		}
		f.answer(meshapi.PathMap, 0)
		eventually(t, "the stream reconnects through the front", func() (bool, string) {
			st := n.client.MapStatus()
			return st.State == controlclient.StreamConnected, string(st.State) + " " + st.LastError
		})
	}
	if !nodeListed(co, id) {
		t.Fatal("the node is gone from the coordinator")
	}
	res, err := n.Logout(context.Background())
	if err != nil || !res.Deleted || res.Already {
		t.Fatalf("logout through the front once it passes again: %+v, %v", res, err)
	}
}

func TestForeign401OnLogoutIsNotLoggedOut(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	f := newFront(t, co.URL)
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	n := startNodeAt(t, f.URL, key, "fronted")
	id := n.Self().ID
	f.answer(meshapi.PathLogout, http.StatusUnauthorized)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	res, err := n.Logout(ctx)
	if err == nil || res.Deleted {
		t.Fatalf("logout answered 401 by the front: %+v, %v; want a failed logout, not a deleted node", res, err)
	}
	if tries := f.foreignAnswers(meshapi.PathLogout); tries < 2 {
		t.Fatalf("the front answered the logout %d times: not retried", tries)
	}
	if !nodeListed(co, id) {
		t.Fatal("the node is gone although the coordinator never saw a logout")
	}
}

func TestForeign403OnRegisterIsRetried(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	f := newFront(t, co.URL)
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	f.answer(meshapi.PathRegister, http.StatusForbidden)
	n, err := New(Config{Coordinator: f.URL, AuthKey: key, Hostname: "late", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	loopbackOnly(n)
	t.Cleanup(func() { n.Close() })
	started := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		started <- n.Start(ctx)
	}()
	eventually(t, "registration retried through the front's 403", func() (bool, string) {
		select {
		case err := <-started:
			t.Fatalf("Start ended while the front answered 403: %v", err)
		default:
		}
		got := f.foreignAnswers(meshapi.PathRegister)
		return got >= 3, fmt.Sprintf("%d attempts", got)
	})
	f.answer(meshapi.PathRegister, 0)
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("Start after the front passes requests again: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Start did not finish once the front passed requests")
	}
}

// nodeListed reports whether the coordinator still has the node.
func nodeListed(co *coordinatortest.Server, id meshapi.NodeID) bool {
	for _, nd := range co.Nodes() {
		if nd.ID == id {
			return true
		}
	}
	return false
}
