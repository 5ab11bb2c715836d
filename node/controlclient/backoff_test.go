package controlclient

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshinit/meshinit/coordinator"
)

func TestBackoffGrowsJitteredAndCaps(t *testing.T) {
	b := Backoff{Min: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	ceilings := []time.Duration{10, 20, 40, 80, 80, 80}
	for i, c := range ceilings {
		c *= time.Millisecond
		d := b.Next()
		if d < c/2 || d > c {
			t.Fatalf("attempt %d: delay %v outside [%v, %v]", i, d, c/2, c)
		}
	}
	b.Reset()
	if d := b.Next(); d > 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want at most Min", d)
	}
}

func TestBackoffJitterSpreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		b := Backoff{Min: time.Second}
		seen[b.Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 first delays took only %d values: no jitter", len(seen))
	}
}

// TestFollowReconnectsWithinTheCoordinatorsGrace: while the coordinator
// refuses connections (a real refused loopback port), the map stream's
// default backoff never waits MaxReconnectDelay or more between attempts,
// and MaxReconnectDelay is below the coordinator's default reconnect grace,
// so a healthy node is back before the coordinator counts it offline. Run
// in a synctest bubble: a minute of backoff in no time, each gap exact.
func TestFollowReconnectsWithinTheCoordinatorsGrace(t *testing.T) {
	if MaxReconnectDelay >= coordinator.DefaultReconnectGrace {
		t.Fatalf("MaxReconnectDelay %v is not below the coordinator's reconnect grace %v", MaxReconnectDelay, coordinator.DefaultReconnectGrace)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	synctest.Test(t, func(t *testing.T) {
		rec := &retryRecorder{}
		c, err := New("http://"+refused, Options{Logger: slog.New(rec)})
		if err != nil {
			t.Fatal(err)
		}
		c.setSecret("mnode-test")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var m NetMap
		c.Follow(ctx, &m, func(Change, *NetMap) {}, FollowOptions{})
		times := rec.times()
		if len(times) < 30 {
			t.Fatalf("%d reconnect attempts in a minute; with delays below %v there are at least 30", len(times), MaxReconnectDelay)
		}
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap >= MaxReconnectDelay {
				t.Fatalf("attempt %d came %v after the one before, not below %v", i, gap, MaxReconnectDelay)
			}
		}
	})
}

// retryRecorder is a slog handler that notes when each "reconnecting" line
// was logged (the bubble's fake time).
type retryRecorder struct {
	mu sync.Mutex
	at []time.Time
}

func (r *retryRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *retryRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *retryRecorder) WithGroup(string) slog.Handler            { return r }
func (r *retryRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "map stream lost, reconnecting" {
		r.mu.Lock()
		r.at = append(r.at, rec.Time)
		r.mu.Unlock()
	}
	return nil
}

func (r *retryRecorder) times() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}
