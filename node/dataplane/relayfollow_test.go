package dataplane

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// pipeRelays stands for the coordinators' relays: the client's dial gets
// an in-memory connection (net.Pipe, so synctest sees its waits) whose
// far end reads and discards what the client writes.
type pipeRelays struct {
	mu     sync.Mutex
	dials  []string                 // the base URL of each dial, in order
	open   map[string]net.Conn      // the relay's end of the live connection to each URL
	gone   map[string]chan struct{} // closed when the connection to that URL ended
	refuse map[string]bool          // URLs whose relay is down
}

func newPipeRelays() *pipeRelays {
	return &pipeRelays{open: map[string]net.Conn{}, gone: map[string]chan struct{}{}, refuse: map[string]bool{}}
}

func (p *pipeRelays) dial(_ context.Context, cfg *RelayConfig, kind string) (*relayConn, error) {
	base := cfg.baseURL()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dials = append(p.dials, base)
	if p.refuse[base] {
		return nil, errors.New("connection refused")
	}
	client, server := net.Pipe()
	gone := make(chan struct{})
	p.open[base], p.gone[base] = server, gone
	go func() {
		io.Copy(io.Discard, server)
		close(gone)
	}()
	return &relayConn{conn: client, src: client, kind: kind, base: base}, nil
}

// kill takes base's relay down: its connection is cut, dials fail.
func (p *pipeRelays) kill(base string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse[base] = true
	p.open[base].Close()
}

func (p *pipeRelays) dialed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.dials)
}

func (p *pipeRelays) ended(base string) bool {
	p.mu.Lock()
	ch := p.gone[base]
	p.mu.Unlock()
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// startPipeClient starts a relay client on relays, following cur.
func startPipeClient(t *testing.T, cur *movingURL, relays *pipeRelays) *relayClient {
	c := newRelayClient(RelayConfig{WatchURL: cur.WatchURL}, testLogger(t))
	c.dial = relays.dial
	c.start()
	t.Cleanup(c.close)
	return c
}

// TestRelayFollowsOnTheSignalAndNeverPolls: a connected relay client looks
// at the node's coordinator once and then sleeps; an hour (fake time)
// passes without a single look or dial. When the control client signals a
// move, the client drops the old relay and dials the new one at that very
// instant: no fake time passes.
func TestRelayFollowsOnTheSignalAndNeverPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cur := newMovingURL("http://r0.test")
		relays := newPipeRelays()
		c := startPipeClient(t, cur, relays)
		synctest.Wait()
		if st := c.Status(); st.State != "connected" || !slices.Equal(relays.dialed(), []string{"http://r0.test"}) {
			t.Fatalf("state %q after dials %v; want connected to r0", st.State, relays.dialed())
		}

		looks := cur.looks()
		time.Sleep(time.Hour) // returns once everything else is blocked
		synctest.Wait()
		if n := cur.looks() - looks; n != 0 {
			t.Errorf("the connected client looked at the coordinator %d times in an hour; want 0 (it waits for the signal)", n)
		}
		if d := relays.dialed(); len(d) != 1 || relays.ended("http://r0.test") {
			t.Fatalf("dials %v, r0 connection ended %v: want one connection, still up", d, relays.ended("http://r0.test"))
		}

		moved := time.Now()
		cur.set("http://r1.test")
		synctest.Wait()
		if !slices.Equal(relays.dialed(), []string{"http://r0.test", "http://r1.test"}) || !relays.ended("http://r0.test") {
			t.Fatalf("after the move: dials %v, r0 connection ended %v; want r1 dialled and r0 dropped", relays.dialed(), relays.ended("http://r0.test"))
		}
		if d := time.Since(moved); d != 0 {
			t.Errorf("followed %v after the signal; want at once", d)
		}
		if st := c.Status(); st.State != "connected" || st.Reconnects != 2 {
			t.Errorf("status %+v; want connected, 2 connections", st)
		}
	})
}

// TestRelayRetryWaitEndsOnTheSignal: a replica dies; its relay connection
// goes first and the client keeps retrying it with backoff. When the
// control client then moves to another replica, the client dials that
// one's relay at once instead of finishing its backoff wait.
func TestRelayRetryWaitEndsOnTheSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cur := newMovingURL("http://r0.test")
		relays := newPipeRelays()
		c := startPipeClient(t, cur, relays)
		synctest.Wait()
		relays.kill("http://r0.test")
		// The client notices at its next write (a ping) and retries r0 with
		// backoff; let it fail a few times.
		time.Sleep(relayPingInterval + 5*time.Second)
		synctest.Wait()
		retries := len(relays.dialed()) - 1
		if retries < 2 || c.Status().State != "connecting" {
			t.Fatalf("dials %v, state %q; want r0 retried while down", relays.dialed(), c.Status().State)
		}

		moved := time.Now()
		cur.set("http://r1.test")
		synctest.Wait()
		d := relays.dialed()
		if d[len(d)-1] != "http://r1.test" || len(d) != retries+2 {
			t.Fatalf("dials %v after the move; want one more, to r1", d)
		}
		if since := time.Since(moved); since != 0 {
			t.Errorf("dialled r1 %v after the signal; want at once", since)
		}
		if st := c.Status(); st.State != "connected" {
			t.Errorf("state %q; want connected to r1", st.State)
		}
	})
}
