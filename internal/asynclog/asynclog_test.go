package asynclog_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/internal/asynclog"
)

// gate is an output that blocks every write until opened, as a pipe that
// nobody reads does.
type gate struct {
	open    chan struct{}
	started chan struct{} // closed when the first write is waiting
	once    sync.Once
	mu      sync.Mutex
	buf     bytes.Buffer
}

func newGate() *gate { return &gate{open: make(chan struct{}), started: make(chan struct{})} }

func (g *gate) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.started) })
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gate) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

func TestBlockedOutputNeverBlocksTheCaller(t *testing.T) {
	g := newGate()
	h := asynclog.New(slog.NewTextHandler(g, nil), 4)
	log := slog.New(h).With("component", "test")
	log.Info("first")
	<-g.started // the writer is stuck on "first"
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			log.Info("line", "i", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("logging blocked on a blocked output")
	}
	// 4 are queued behind the stuck one, the rest dropped.
	if d := h.Dropped(); d != 96 {
		t.Fatalf("%d dropped, want 96", d)
	}
	close(g.open)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(g.String(), "i=3\n") { // the queue drains
		if time.Now().After(deadline) {
			t.Fatalf("the queued lines were not written:\n%s", g.String())
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	log.Info("after")
	h.Close(10 * time.Second)
	out := g.String()
	for _, want := range []string{"msg=first", "i=0\n", "i=3\n", "log output was blocked", "dropped=96", "msg=after component=test"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "i=4\n") {
		t.Fatalf("a record beyond the queue was written:\n%s", out)
	}
	if strings.Index(out, "log output was blocked") > strings.Index(out, "msg=after") {
		t.Fatalf("the drop warning must come before the next line written:\n%s", out)
	}
}

func TestCloseGivesUpOnABlockedOutput(t *testing.T) {
	g := newGate()
	defer close(g.open)
	h := asynclog.New(slog.NewTextHandler(g, nil), 4)
	slog.New(h).Info("stuck")
	start := time.Now()
	h.Close(50 * time.Millisecond)
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("Close waited %v on a blocked output", waited)
	}
	slog.New(h).Info("after close") // dropped, not a panic
	if asynclog.New(h, 0) != h {
		t.Fatal("wrapping a Handler again must return it")
	}
}
