package coordinator

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// fullPipe is a log output that takes capacity bytes and then blocks every
// write until the test ends, as stderr does when it is a pipe nobody reads.
type fullPipe struct {
	mu       sync.Mutex
	room     int
	blocked  atomic.Int32 // writers stuck now
	released chan struct{}
}

func (p *fullPipe) Write(b []byte) (int, error) {
	p.mu.Lock()
	if len(b) <= p.room {
		p.room -= len(b)
		p.mu.Unlock()
		return len(b), nil
	}
	p.mu.Unlock()
	p.blocked.Add(1)
	<-p.released
	return 0, http.ErrServerClosed // any error: the test is over
}

// TestBlockedLogNeverStallsTheServer: with a log output that blocks (a
// full pipe), registrations, streams and logouts still succeed. Nothing is
// logged while the state lock is held, and the coordinator never waits for
// its log: lines are queued and dropped once the queue is full.
func TestBlockedLogNeverStallsTheServer(t *testing.T) {
	pipe := &fullPipe{room: 2048, released: make(chan struct{})}
	defer close(pipe.released)
	e := newEnv(t, Config{Logger: slog.New(slog.NewTextHandler(pipe, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	done := make(chan error, 1)
	go func() {
		defer close(done)
		for i := range 200 {
			c, status, er := e.tryRegister(k.Key, "web")
			if c == nil {
				t.Errorf("registration %d: %d %+v", i, status, er)
				return
			}
			if i%10 == 0 {
				c.connect("").next(wait)
				if status, _, _ := c.logout(nil); status != http.StatusOK {
					t.Errorf("logout %d: %d", i, status)
					return
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the coordinator stalled behind its blocked log")
	}
	if pipe.blocked.Load() == 0 {
		t.Fatal("the log output never blocked: the test did not test anything")
	}
}
