package replica

import (
	"context"
	"log/slog"
	"time"

	"github.com/meshinit/meshinit/coordinator/store"
)

// Registry is the replicas table (store.Postgres).
type Registry interface {
	Heartbeat(ctx context.Context) (alive bool, err error)
	DeadReplicas(ctx context.Context, timeout time.Duration) ([]store.Replica, error)
}

// Liveness keeps a replica's heartbeat and watches the others'.
type Liveness struct {
	// Interval is how often the heartbeat is written (2s).
	Interval time.Duration
	// Timeout is how old another replica's last heartbeat must be for it
	// to count as dead (6s: three missed beats).
	Timeout time.Duration
	// Dead is called with the replicas found dead. It takes their nodes
	// over in one write that also removes their rows (store.RemoveReplica),
	// so that exactly one replica does it.
	Dead func(ctx context.Context, dead []store.Replica)
	// Evicted is called when this replica's own row is gone: the others
	// declared it dead (it was cut from the database for longer than the
	// timeout). It must drop its streams and join again.
	Evicted func(ctx context.Context)
	// Cut, if set, is called with true when no heartbeat has reached the
	// database for Timeout: the others may declare this replica dead and
	// take its nodes over while its process runs on, so it must let them
	// go to replicas that can write. It is called with false once a
	// heartbeat gets through again.
	Cut func(cut bool)
	// Healthy, if set, hears whether each heartbeat reached the database.
	Healthy func(ok bool)
	Logger  *slog.Logger
}

// Defaults of Liveness.
const (
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultReplicaTimeout    = 3 * DefaultHeartbeatInterval
)

// Run beats and watches until ctx ends. It judges others only once its
// own heartbeats have been written without a break for Timeout: after an
// outage of the database every heartbeat is stale, its own included, and
// no replica may declare the others dead for it.
func (l *Liveness) Run(ctx context.Context, reg Registry) {
	interval, timeout := l.Interval, l.Timeout
	if interval <= 0 {
		interval = DefaultHeartbeatInterval
	}
	if timeout <= 0 {
		timeout = DefaultReplicaTimeout
	}
	log := l.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var since time.Time               // start of the current unbroken run of heartbeats
	reached, cut := time.Now(), false // the database's last answer; Cut(true) called
	// A round's calls are bounded: a connection whose packets are dropped
	// would hold the loop, and the cut would go unnoticed. A heartbeat
	// that reached the database, an interval, then a round that fails
	// after bound: the cut is noticed at the timeout.
	bound := max(timeout-interval, interval)
	for {
		rctx, cancel := context.WithTimeout(ctx, bound)
		alive, err := reg.Heartbeat(rctx)
		now := time.Now()
		if l.Healthy != nil && ctx.Err() == nil {
			l.Healthy(err == nil)
		}
		switch {
		case ctx.Err() != nil:
			cancel()
			return
		case err != nil:
			if !since.IsZero() {
				log.Warn("heartbeat failed; not judging other replicas until it is back", "err", err)
			}
			since = time.Time{}
			if !cut && now.Sub(reached) >= timeout {
				cut = true
				log.Error("no heartbeat reached the database for the replica timeout: the others may take this replica's nodes over",
					"timeout", timeout, "err", err)
				if l.Cut != nil {
					l.Cut(true)
				}
			}
		case !alive:
			log.Error("this replica was declared dead by the others; rejoining")
			since = time.Time{}
			l.reached(&reached, &cut, now, log)
			if l.Evicted != nil {
				l.Evicted(rctx)
			}
		default:
			l.reached(&reached, &cut, now, log)
			if since.IsZero() {
				since = now
			}
			if now.Sub(since) >= timeout {
				dead, err := reg.DeadReplicas(rctx, timeout)
				if err != nil {
					log.Warn("reading the replicas failed", "err", err)
				} else if len(dead) > 0 && l.Dead != nil {
					l.Dead(ctx, dead)
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// reached records that the database answered at now, and ends a cut.
func (l *Liveness) reached(at *time.Time, cut *bool, now time.Time, log *slog.Logger) {
	*at = now
	if *cut {
		*cut = false
		log.Info("heartbeats reach the database again")
		if l.Cut != nil {
			l.Cut(false)
		}
	}
}
