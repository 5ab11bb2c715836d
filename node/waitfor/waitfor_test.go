package waitfor

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/node/hostport"
)

var errNotInMap = errors.New("not in the map")

// A peer that is missing from the map and then listens is waited for; Wait
// returns only after a connection to it was established.
func TestWaitHoldsUntilThePeerAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var attempts atomic.Int32
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		// The first three attempts find "db" not in the map yet.
		if attempts.Add(1) <= 3 {
			return nil, errNotInMap
		}
		var d net.Dialer
		return d.DialContext(ctx, network, ln.Addr().String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := Wait(ctx, dial, []hostport.HostPort{{Host: "db", Port: 5432}}, nil); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if n := attempts.Load(); n != 4 {
		t.Fatalf("%d attempts, want 4 (three misses, then the connection)", n)
	}
	// The connection Wait made is in the listener's queue.
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	c, err := ln.Accept()
	if err != nil {
		t.Fatalf("no connection reached the peer: %v", err)
	}
	c.Close()
}

// When the context ends, the error names every peer that did not answer,
// with its last error, and only those.
func TestWaitTimeoutNamesThePeer(t *testing.T) {
	up := testnet.Serve(t, "tcp", "127.0.0.1:0", func(net.Conn) {})
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		if strings.HasPrefix(address, "up:") {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(up))))
		}
		return nil, errNotInMap
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	targets := []hostport.HostPort{{Host: "up", Port: 1}, {Host: "db", Port: 5432}}
	err := Wait(ctx, dial, targets, nil)
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Wait: %v, want a *TimeoutError", err)
	}
	if len(te.Pending) != 1 || te.Pending[0].Target.String() != "db:5432" || !errors.Is(te.Pending[0].LastErr, errNotInMap) {
		t.Fatalf("pending %+v, want only db:5432 with its last error", te.Pending)
	}
	if !strings.Contains(err.Error(), "db:5432 did not answer") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("message %q", err)
	}
}

func TestWaitWithoutTargetsReturnsAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
}
