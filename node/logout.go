package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// Logout leaves the mesh now: the coordinator deletes an ephemeral node at
// once (reason logout) and tells the peers. The tunnel goes down; the proxy
// keeps serving non-mesh destinations, so the app keeps running without the
// mesh. ctx bounds the call (meshinit gives it what is left of the stop
// budget). A second call reports the first one's result with Already set.
//
// When the coordinator cannot be reached the node still leaves locally and
// the error says so; an ephemeral node is then collected after its
// inactivity timeout.
//
// Every wait in it ends with ctx: for a concurrent Logout (meshinit logout
// over the control socket while the stop path logs out), for a registration
// in flight, for the coordinator, for the background work to stop.
func (n *Node) Logout(ctx context.Context) (ctlsock.LogoutResult, error) {
	select {
	case n.logoutLock <- struct{}{}:
		defer func() { <-n.logoutLock }()
	case <-ctx.Done():
		return ctlsock.LogoutResult{}, fmt.Errorf("logout: another logout (meshinit logout?) was still running when the time ran out: %w", ctx.Err())
	}
	n.mu.Lock()
	if n.logout != nil {
		res := *n.logout
		res.Already = true
		n.mu.Unlock()
		return res, nil
	}
	// From here on, map deltas are ignored and Start stops after its
	// current step.
	n.logout = &ctlsock.LogoutResult{}
	started, cancelStart := n.started, n.cancelStart
	n.mu.Unlock()

	// Stop the stream first: its end is expected now, not an error.
	n.runCancel()
	// A registration in flight would leave a node behind: wait for its
	// answer, and give up on it (cancel it) when ctx runs out. There is no
	// time left then to log out what it might still register; the
	// coordinator collects that.
	if started {
		select {
		case <-n.regDone:
		case <-ctx.Done():
			cancelStart()
		}
	}
	registered := n.client.HasSecret()

	var res ctlsock.LogoutResult
	var err error
	begin := time.Now()
	if registered {
		var resp *meshapi.LogoutResponse
		resp, err = n.client.Logout(ctx)
		if errors.Is(err, controlclient.ErrAlreadyGone) {
			n.log.Info("logout: the coordinator had already removed this node")
			res.Deleted, err = true, nil
		} else if err == nil {
			res.Deleted = resp.Deleted
		}
	}
	took := time.Since(begin).Round(time.Microsecond)

	if !waitCtx(ctx, &n.bg) {
		n.log.Warn("logout: background work did not stop in time; leaving the mesh without waiting for it")
	}
	n.mu.Lock()
	*n.logout = res
	takeDown := n.leaveLocked()
	n.mu.Unlock()
	takeDown()
	switch {
	case !registered:
		n.log.Info("logout: the node never registered; nothing to do")
	case err != nil:
		n.log.Warn("logout failed; the node left the mesh locally and the coordinator will collect it", "err", err, "took", took.String())
	default:
		n.log.Info("logged out", "deleted", res.Deleted, "took", took.String())
	}
	return res, err
}

// waitCtx waits for wg, or until ctx ends; it reports whether wg finished.
// When ctx wins, a goroutine is left waiting for wg: meshinit is on its way
// out, and the work it waits for has been cancelled.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}
