package node

import (
	"context"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
)

// TestLogoutNotHeldPastItsDeadline: a "meshinit logout" over the control
// socket is stuck on a coordinator that never answers; the stop path's
// logout, given 300 ms, returns within them instead of waiting for the
// other one's much longer limit.
func TestLogoutNotHeldPastItsDeadline(t *testing.T) {
	co := coordinatortest.NewServer(t, coordinator.Config{})
	f := newFront(t, co.URL)
	key := co.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	n := startNodeAt(t, f.URL, key, "held")
	f.holdRequests(meshapi.PathLogout)

	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := n.Logout(ctx)
		first <- err
	}()
	select {
	case <-f.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the first logout never reached the coordinator's front")
	}

	const limit = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	t0 := time.Now()
	_, err := n.Logout(ctx)
	took := time.Since(t0)
	if err == nil {
		t.Fatal("the second logout succeeded while the first one holds the coordinator")
	}
	// Generous for a loaded machine, far below the first logout's 30 s.
	if took > limit+5*time.Second {
		t.Fatalf("the stop path's logout took %v with a %v limit: held by the other logout", took, limit)
	}
	t.Logf("second logout returned after %v: %v", took, err)
}
