package node

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/meshapi"
)

// lockProbe is a slog handler that checks, for every line, that the node's
// mutex is free: another goroutine takes and releases n.mu while the
// logging one waits. A line logged under n.mu would keep that goroutine
// waiting until the log call returned, so after a generous deadline the
// line is recorded as logged under the lock (and the probe goes on).
type lockProbe struct {
	node atomic.Pointer[Node]

	mu        sync.Mutex
	seen      []string
	underLock []string
}

// Enabled leaves out debug lines: wireguard-go's own (the device is driven
// under n.mu by design, and its verbose log is on only at debug level).
func (h *lockProbe) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *lockProbe) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h *lockProbe) WithGroup(string) slog.Handler                { return h }

func (h *lockProbe) Handle(_ context.Context, r slog.Record) error {
	n := h.node.Load()
	if n == nil {
		return nil
	}
	free := make(chan struct{})
	go func() {
		n.mu.Lock()
		n.mu.Unlock()
		close(free)
	}()
	held := false
	select {
	case <-free:
	case <-time.After(5 * time.Second):
		held = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, r.Message)
	if held {
		h.underLock = append(h.underLock, r.Message)
	}
	return nil
}

func (h *lockProbe) saw(msg string) (bool, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.seen, msg), fmt.Sprintf("lines so far: %q; under the lock: %q", h.seen, h.underLock)
}

// The node logs what a map change did (a peer joined or left, a policy in
// force) after releasing its lock, never under it: a blocked log output
// must not stall the map stream and every dial with it.
func TestMapChangesAreLoggedOutsideTheNodeLock(t *testing.T) {
	c := coordinatortest.NewServer(t, coordinator.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	allowAll := func(comment string) []byte {
		return []byte(`{"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]}]} // ` + comment)
	}
	if _, err := c.Admin.SetPolicy(ctx, allowAll("first")); err != nil {
		t.Fatal(err)
	}
	key := c.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true, Tags: []string{"tag:ci"}}).Key

	probe := &lockProbe{}
	a, err := New(Config{Coordinator: c.URL, AuthKey: key, Hostname: "watched", Log: slog.New(probe)})
	if err != nil {
		t.Fatal(err)
	}
	loopbackOnly(a)
	t.Cleanup(func() { a.Close() })
	probe.node.Store(a)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	b := startNode(t, c, key, "other")
	eventually(t, "the watched node logs the peer joining", func() (bool, string) {
		return probe.saw("peer joined")
	})
	if _, err := c.Admin.SetPolicy(ctx, allowAll("second")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the watched node logs the peer leaving", func() (bool, string) {
		return probe.saw("peer left")
	})

	probe.mu.Lock()
	defer probe.mu.Unlock()
	if n := countOf(probe.seen, "access policy in force"); n != 2 {
		t.Errorf("the node logged the policy in force %d times, want 2 (at start, then the change): %q", n, probe.seen)
	}
	if len(probe.underLock) > 0 {
		t.Errorf("logged while holding the node's lock: %q", probe.underLock)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
