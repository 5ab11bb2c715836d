package replica

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// These tests run Liveness.Run in a synctest bubble against a scripted
// in-memory Registry (the real one, store.Postgres, is covered by
// integration/store and integration/replicas): every time below is the
// bubble's fake clock, exact, and synctest.Test fails a test that leaves a
// goroutine behind.

const (
	interval = DefaultHeartbeatInterval // 2s
	timeout  = DefaultReplicaTimeout    // 6s
)

// outcome is what a scripted heartbeat answers.
type outcome int

const (
	written outcome = iota // the heartbeat was written: alive
	failed                 // an error at once (the database refuses or is down)
	hangs                  // no answer until the round's ctx ends (packets dropped)
	evicted                // the database answered, but this replica's row is gone: alive=false
)

// fakeRegistry answers each heartbeat as its script says for the time of
// the call, and notes every call to it and every callback of the Liveness
// it makes (liveness) on one timeline, at the bubble's time since start.
type fakeRegistry struct {
	start  time.Time
	script func(at time.Duration) outcome
	// dead answers DeadReplicas; nil means none are dead.
	dead func(at time.Duration) []store.Replica

	mu      sync.Mutex
	events  []string
	reached time.Time // the last time the database answered a heartbeat (start at first)
	hungFor []time.Duration
}

func newFake(script func(at time.Duration) outcome) *fakeRegistry {
	now := time.Now()
	return &fakeRegistry{start: now, reached: now, script: script}
}

func (f *fakeRegistry) since() time.Duration { return time.Since(f.start) }

func (f *fakeRegistry) note(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, fmt.Sprintf("%v ", f.since())+fmt.Sprintf(format, args...))
}

func (f *fakeRegistry) Heartbeat(ctx context.Context) (bool, error) {
	at := f.since()
	f.note("beat")
	switch f.script(at) {
	case failed:
		return false, errors.New("connection refused")
	case hangs:
		<-ctx.Done()
		f.mu.Lock()
		f.hungFor = append(f.hungFor, f.since()-at)
		f.mu.Unlock()
		f.note("gave up")
		return false, ctx.Err()
	case evicted:
		f.answered()
		return false, nil
	default:
		f.answered()
		return true, nil
	}
}

func (f *fakeRegistry) answered() {
	f.mu.Lock()
	f.reached = time.Now()
	f.mu.Unlock()
}

func (f *fakeRegistry) DeadReplicas(_ context.Context, timeout time.Duration) ([]store.Replica, error) {
	at := f.since()
	var dead []store.Replica
	if f.dead != nil {
		dead = f.dead(at)
	}
	f.note("judge %v -> %s", timeout, ids(dead))
	return dead, nil
}

// liveness returns a Liveness whose callbacks note themselves on f's
// timeline.
func (f *fakeRegistry) liveness(interval, timeout time.Duration) *Liveness {
	return &Liveness{
		Interval: interval,
		Timeout:  timeout,
		Dead:     func(_ context.Context, dead []store.Replica) { f.note("dead %s", ids(dead)) },
		Evicted: func(ctx context.Context) {
			if ctx.Err() != nil {
				f.note("evicted with an ended ctx")
				return
			}
			f.note("evicted")
		},
		Cut: func(cut bool) {
			f.mu.Lock()
			silent := time.Since(f.reached)
			f.mu.Unlock()
			f.note("cut %v (%v since the database last answered)", cut, silent)
		},
		Healthy: func(ok bool) { f.note("healthy %v", ok) },
	}
}

// timeline returns the events whose text (after the time) starts with one
// of kinds.
func (f *fakeRegistry) timeline(kinds ...string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, e := range f.events {
		_, what, _ := strings.Cut(e, " ")
		for _, k := range kinds {
			if strings.HasPrefix(what, k) {
				out = append(out, e)
				break
			}
		}
	}
	return out
}

func ids(rs []store.Replica) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// runFor runs l against f until d has passed, then ends its ctx and
// returns how long Run took to return after that (fake time). d is chosen
// off the ticks, so that no round runs at the moment the ctx ends.
func runFor(t *testing.T, l *Liveness, f *fakeRegistry, d time.Duration) time.Duration {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx, f)
	}()
	time.Sleep(d - f.since())
	synctest.Wait() // Run is blocked: on its ticker, or in a hanging heartbeat
	ended := time.Now()
	cancel()
	<-done
	return time.Since(ended)
}

func want(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// ticks returns "<t> <what>" for t from first to last, every step.
func ticks(first, last, step time.Duration, what string) []string {
	var out []string
	for at := first; at <= last; at += step {
		out = append(out, fmt.Sprintf("%v %s", at, what))
	}
	return out
}

// TestLivenessJudgesOnlyAfterAnUnbrokenTimeoutOfHeartbeats: the heartbeat
// is written every Interval from the start; the others are judged
// (DeadReplicas with the Timeout, then Dead with exactly what it found,
// and Dead not at all when it found none) only once this replica's own
// heartbeats have run without a break for Timeout, and after a failed
// heartbeat (an error, or a round that gave up on a hanging one) only
// after a new unbroken run of Timeout.
func TestLivenessJudgesOnlyAfterAnUnbrokenTimeoutOfHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(at time.Duration) outcome {
			switch at {
			case 12 * time.Second:
				return failed
			case 22 * time.Second:
				return hangs // gives up at 26s, when the next round starts
			}
			return written
		})
		f.dead = func(at time.Duration) []store.Replica {
			if at == 8*time.Second {
				return nil
			}
			return []store.Replica{{ID: fmt.Sprintf("a@%v", at)}, {ID: "b"}}
		}
		runFor(t, f.liveness(interval, timeout), f, 37*time.Second)

		beats := append(ticks(0, 22*time.Second, interval, "beat"), ticks(26*time.Second, 36*time.Second, interval, "beat")...)
		want(t, "heartbeats", f.timeline("beat"), beats)
		want(t, "judging", f.timeline("judge", "dead"), []string{
			// unbroken from 0s
			"6s judge 6s -> [a@6s b]", "6s dead [a@6s b]",
			"8s judge 6s -> []",
			"10s judge 6s -> [a@10s b]", "10s dead [a@10s b]",
			// failed at 12s; unbroken from 14s
			"20s judge 6s -> [a@20s b]", "20s dead [a@20s b]",
			// gave up at 26s; unbroken from 26s
			"32s judge 6s -> [a@32s b]", "32s dead [a@32s b]",
			"34s judge 6s -> [a@34s b]", "34s dead [a@34s b]",
			"36s judge 6s -> [a@36s b]", "36s dead [a@36s b]",
		})
	})
}

// TestLivenessCutOnceAfterTimeoutWithoutHeartbeats: Cut(true) is called
// exactly once when no heartbeat has reached the database for Timeout, and
// Cut(false) exactly once when one gets through again; an outage shorter
// than that (two failed heartbeats: 6s between the two that got through)
// cuts nothing.
func TestLivenessCutOnceAfterTimeoutWithoutHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(at time.Duration) outcome {
			switch {
			case at >= 4*time.Second && at < 8*time.Second: // reached at 2s, 8s
				return failed
			case at >= 14*time.Second && at < 26*time.Second: // reached at 12s, 26s
				return failed
			}
			return written
		})
		runFor(t, f.liveness(interval, timeout), f, 41*time.Second)

		want(t, "cuts", f.timeline("cut"), []string{
			"18s cut true (6s since the database last answered)",
			"26s cut false (0s since the database last answered)",
		})
	})
}

// TestLivenessHangingHeartbeatIsBounded: a heartbeat that never answers
// (the fake blocks until its ctx ends) does not hold the loop: each round
// gives up (Healthy(false)) within Timeout, the next one starts, and the
// cut is noticed between Timeout and Timeout+Interval after the database
// last answered, whether it never did since the start, did until the hang
// began, or heartbeats failed at once before it; it ends when a heartbeat
// answers again. Run with the default timing and with others.
func TestLivenessHangingHeartbeatIsBounded(t *testing.T) {
	for _, c := range []struct{ interval, timeout time.Duration }{
		{interval, timeout},
		{time.Second, 5 * time.Second},
		{2 * time.Second, 3 * time.Second},
		{3 * time.Second, 3 * time.Second},
	} {
		const back = 40 * time.Second // the heartbeats answer again
		for _, s := range []struct {
			name string
			at   func(at time.Duration) outcome
		}{
			{"from the start", func(time.Duration) outcome { return hangs }},
			{"after heartbeats", func(at time.Duration) outcome {
				if at < 7*time.Second {
					return written
				}
				return hangs
			}},
			{"after failed heartbeats", func(at time.Duration) outcome {
				switch {
				case at == 0:
					return written
				case at < c.timeout:
					return failed
				}
				return hangs
			}},
		} {
			t.Run(fmt.Sprintf("interval=%v,timeout=%v,%s", c.interval, c.timeout, s.name), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					f := newFake(func(at time.Duration) outcome {
						if at >= back {
							return written
						}
						return s.at(at)
					})
					var cutAt []time.Duration
					l := f.liveness(c.interval, c.timeout)
					noted := l.Cut
					l.Cut = func(cut bool) {
						f.mu.Lock()
						silent := time.Since(f.reached)
						f.mu.Unlock()
						if cut {
							cutAt = append(cutAt, silent)
						}
						noted(cut)
					}
					runFor(t, l, f, back+c.timeout+c.interval/2)

					if len(cutAt) != 1 {
						t.Fatalf("Cut(true) called %d times, want once: %q", len(cutAt), f.timeline("cut"))
					}
					if cutAt[0] < c.timeout || cutAt[0] > c.timeout+c.interval {
						t.Errorf("cut noticed %v after the database last answered, want within [%v, %v]", cutAt[0], c.timeout, c.timeout+c.interval)
					}
					cuts := f.timeline("cut")
					if len(cuts) != 2 || !strings.Contains(cuts[1], "cut false") {
						t.Errorf("cuts %q, want Cut(true) then Cut(false) once the heartbeat answers", cuts)
					}
					f.mu.Lock()
					hung := f.hungFor
					f.mu.Unlock()
					if len(hung) < 2 {
						t.Errorf("%d hanging heartbeats, want the rounds to give up and go on", len(hung))
					}
					for _, d := range hung {
						if d > c.timeout {
							t.Errorf("a hanging heartbeat was given up after %v, more than the timeout %v", d, c.timeout)
						}
					}
					// Every round that gave up was heard as unhealthy (the
					// last one, if the ctx ended it, was not a round's end).
					gaveUp := f.timeline("gave up", "healthy false")
					for i, e := range gaveUp {
						if at, _, _ := strings.Cut(e, " "); strings.HasSuffix(e, "gave up") &&
							(i+1 == len(gaveUp) || gaveUp[i+1] != at+" healthy false") {
							t.Errorf("the round that gave up at %s was not heard as unhealthy: %q", at, gaveUp)
						}
					}
				})
			})
		}
	}
}

// TestLivenessEvictedWhenDeclaredDead: a heartbeat answered alive=false
// (this replica's row is gone) calls Evicted once, with a live ctx, and
// ends a cut that was on (Cut(false) first: the database answered).
func TestLivenessEvictedWhenDeclaredDead(t *testing.T) {
	t.Run("not cut", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(func(at time.Duration) outcome {
				if at == 2*time.Second {
					return evicted
				}
				return written
			})
			runFor(t, f.liveness(interval, timeout), f, 9*time.Second)
			want(t, "eviction", f.timeline("evicted", "cut"), []string{"2s evicted"})
		})
	})
	t.Run("cut", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(func(at time.Duration) outcome {
				switch {
				case at >= 2*time.Second && at < 8*time.Second:
					return failed
				case at == 8*time.Second:
					return evicted
				}
				return written
			})
			runFor(t, f.liveness(interval, timeout), f, 15*time.Second)
			want(t, "eviction", f.timeline("evicted", "cut"), []string{
				"6s cut true (6s since the database last answered)",
				"8s cut false (0s since the database last answered)",
				"8s evicted",
			})
		})
	})
}

// TestLivenessJudgesOnlyAnUnbrokenRunAfterEviction: a heartbeat answered
// alive=false wrote nothing, so it breaks the run of heartbeats like a
// failed one: the others are judged again only after Timeout of new ones.
func TestLivenessJudgesOnlyAnUnbrokenRunAfterEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(func(at time.Duration) outcome {
			if at == 8*time.Second {
				return evicted
			}
			return written
		})
		runFor(t, f.liveness(interval, timeout), f, 19*time.Second)
		want(t, "judging", f.timeline("judge"), []string{
			"6s judge 6s -> []",
			"16s judge 6s -> []", // unbroken from 10s
			"18s judge 6s -> []",
		})
	})
}

// TestLivenessHealthyHearsEachRoundAndRunEndsWithCtx: Healthy hears each
// round's outcome (true when the database answered, evicted included;
// false for an error and for a round that gave up), and Run returns as
// soon as its ctx ends, whether it waits for the next round or for a
// hanging heartbeat, without a word to Healthy for the round it left.
// synctest.Test fails the test if Run leaves a goroutine behind.
func TestLivenessHealthyHearsEachRoundAndRunEndsWithCtx(t *testing.T) {
	script := func(at time.Duration) outcome {
		switch at {
		case 2 * time.Second:
			return failed
		case 4 * time.Second:
			return evicted
		case 6 * time.Second, 16 * time.Second:
			return hangs
		}
		return written
	}
	t.Run("ended between rounds", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(script)
			if lag := runFor(t, f.liveness(interval, timeout), f, 15*time.Second); lag != 0 {
				t.Errorf("Run returned %v after its ctx ended, want at once", lag)
			}
			want(t, "health", f.timeline("healthy"), []string{
				"0s healthy true",
				"2s healthy false",
				"4s healthy true",
				"10s healthy false", // gave up on the heartbeat of 6s
				"10s healthy true",
				"12s healthy true",
				"14s healthy true",
			})
		})
	})
	t.Run("ended in a hanging heartbeat", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFake(script)
			if lag := runFor(t, f.liveness(interval, timeout), f, 17*time.Second); lag != 0 {
				t.Errorf("Run returned %v after its ctx ended, want at once", lag)
			}
			want(t, "health", f.timeline("healthy"), []string{
				"0s healthy true",
				"2s healthy false",
				"4s healthy true",
				"10s healthy false",
				"10s healthy true",
				"12s healthy true",
				"14s healthy true",
			})
			if got := f.timeline("beat"); got[len(got)-1] != "16s beat" {
				t.Errorf("last heartbeat %q, want the one hanging since 16s", got[len(got)-1])
			}
		})
	})
}
