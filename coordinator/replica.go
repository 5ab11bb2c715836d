package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/ipam"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/presence"
	"github.com/meshinit/meshinit/coordinator/replica"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Replica mode (docs/replicas.md): the server is one replica among any
// number on one PostgreSQL database, all serving at once. The database is
// the only source of truth; the memory (the same mesh, maps, presence and
// GC timers as in SQLite mode) is a cache fed by the change log, in log
// order, the replica's own changes included:
//
//   - a change is decided by the writer (replicawriter.go) under the mesh
//     lock, after catching up, and its map lines are held until its commit
//     (maps.Log.Hold/Release), so that the ring's versions are the log's;
//   - changes of other replicas are applied as the follower reads them
//     (replica.Follower: a NOTIFY wakes it, a poll bounds a lost one);
//   - presence: the node row says which replica holds its stream (home);
//     a replica closes its stream of a node another replica took;
//   - liveness: heartbeats in the replicas table; a dead replica's nodes go
//     offline in one change that also removes its row;
//   - GC: every replica arms every deadline, and the deletion re-checks
//     under the lock, so the first one deletes and the others find nothing.

// metaEpoch names the database's map epoch (chosen by the first replica).
const metaEpoch = "map_epoch"

// Replica-mode timings.
const (
	// logPoll bounds how late a change is seen when its NOTIFY was lost.
	logPoll = 250 * time.Millisecond
	// replicaWriteTimeout bounds one write transaction.
	replicaWriteTimeout = 10 * time.Second
	// changeRetention is how many versions of the change log are kept for
	// replicas that fall behind (older ones reload from the tables).
	changeRetention      = 100_000
	pruneChangesInterval = time.Minute
)

// replicaCore is the replica-mode part of a Server.
type replicaCore struct {
	s        *Server
	pg       *store.Postgres
	started  time.Time // no dead replica's node has its clock counted from before it
	follower *replica.Follower
	writer   *replicaWriter
	// gone: the replicas whose nodes were taken over, each with the last
	// heartbeat it was declared dead at (under s.mu). One that rejoined
	// and beat since is not gone any more.
	gone map[string]time.Time

	stopPrune func() // the change log's retention timer
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// startReplica loads the state as one replica on pg and starts following
// the change log, the heartbeats and the writer.
func (s *Server) startReplica(ctx context.Context, pg *store.Postgres, now time.Time) error {
	// What every replica must agree on is chosen once, by the first.
	ula, err := ipam.NewULA()
	if err != nil {
		return err
	}
	if _, err := pg.EnsureMeta(ctx, mesh.MetaULA, ula.String()); err != nil {
		return err
	}
	var eb [8]byte
	if _, err := rand.Read(eb[:]); err != nil {
		return fmt.Errorf("making an epoch: %w", err)
	}
	if s.epoch, err = pg.EnsureMeta(ctx, metaEpoch, hex.EncodeToString(eb[:])); err != nil {
		return err
	}
	// Joined before loading: nothing is homed here before the row exists.
	if err := pg.JoinReplicas(ctx, s.cfg.ReplicaURL); err != nil {
		return err
	}
	snap, err := pg.Load(ctx)
	if err != nil {
		return err
	}
	s.self = pg.Instance()
	r := &replicaCore{s: s, pg: pg, started: now, gone: map[string]time.Time{}}
	r.writer = newReplicaWriter(s.cfg.MaxQueuedWrites, r.write)
	s.rep = r
	s.events = eventlog.New(pg, snap.LastEventSeq, s.cfg.EventLogSize, s.logEvent)
	s.maps = s.newMaps(snap.LogVersion)
	s.mu.Lock()
	expired, err := s.loadReplicaLocked(snap, now)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	r.follower = replica.NewFollower(pg, snap.LogVersion, r.apply, r.reload, s.log)
	live := &replica.Liveness{Dead: r.takeOver, Evicted: r.rejoin, Cut: r.cutOff, Healthy: s.metrics.setStoreHealthy, Logger: s.log}
	rctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(3)
	go func() { defer r.wg.Done(); r.follower.Run(rctx, logPoll) }()
	go func() { defer r.wg.Done(); live.Run(rctx, pg) }()
	go func() { defer r.wg.Done(); r.writer.run() }()
	if err := r.collectExpired(expired); err != nil {
		return err
	}
	r.stopPrune = clock.Repeat(s.clock, pruneChangesInterval, pruneChangesInterval, r.pruneChanges)
	s.log.Info("state loaded", "replica", s.self, "version", snap.LogVersion, "nodes", len(s.mesh.Nodes()),
		"prefixes", s.mesh.Prefixes(), "epoch", s.epoch)
	return nil
}

// loadReplicaLocked makes snap the memory, at now, and the map log's table
// live at its version: nodes online on other replicas stay so (their
// replicas, or the takeover of a dead one, decide), a stream held here for
// a node homed elsewhere closes, and a node homed here without a stream
// starts its grace. It returns the offline nodes whose deadline has
// passed.
func (s *Server) loadReplicaLocked(snap *store.Snapshot, now time.Time) ([]meshapi.NodeID, error) {
	cfg := mesh.Config{BaseDomain: s.cfg.BaseDomain, EphemeralTimeout: s.cfg.EphemeralTimeout, ReconnectGrace: s.cfg.ReconnectGrace}
	m, rest, err := mesh.Load(cfg, snap, time.Time{}, now, fanout{s})
	if err != nil {
		s.maps.Abort()
		return nil, err
	}
	s.mesh = m
	s.maps.SetPrefixes(m.Prefixes())
	for _, id := range s.presence.Nodes() {
		if n := m.Node(id); n == nil || n.LoggedOut || n.Home != s.self {
			s.presence.Forget(id)
		}
	}
	for _, n := range m.Nodes() {
		if n.Online && !n.LoggedOut && n.Home == s.self && !s.presence.Has(n.ID) {
			s.presence.StartGrace(n.ID, presence.Absence{LastSeen: now, ClockFrom: now})
		}
	}
	var expired []meshapi.NodeID
	for _, n := range rest.Expired {
		expired = append(expired, n.ID)
	}
	return expired, s.maps.LiveAt(snap.LogVersion)
}

// collectExpired deletes, before the replica serves, the nodes whose
// deadline passed while no replica was up to collect them (late, never
// early; their deletion events say so).
func (r *replicaCore) collectExpired(ids []meshapi.NodeID) error {
	if len(ids) == 0 {
		return nil
	}
	b, e := r.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		var ch mesh.Change
		for _, id := range ids {
			if n := m.Node(id); n != nil {
				c, _ := m.Collect(n, "deadline "+n.GCDeadline.UTC().Format(time.RFC3339Nano)+" passed while the coordinator was down", now)
				ch = append(ch, c...)
			}
		}
		return ch, nil
	})
	if e != nil {
		return e
	}
	return b.Wait(context.Background(), r.s.cfg.CommitTimeout)
}

// apply applies a change another replica committed (or this one, read
// back after a reload).
func (r *replicaCore) apply(c store.Change) error {
	s := r.s
	s.mu.Lock()
	s.maps.Hold()
	err := s.mesh.Apply(c.Ops)
	s.mu.Unlock()
	if err != nil {
		s.maps.Abort()
		return err
	}
	return r.committed(c)
}

// committed publishes a committed change the memory holds: its held map
// lines take the change's versions, and its events go to the followers.
func (r *replicaCore) committed(c store.Change) error {
	s := r.s
	s.mu.Lock()
	err := s.maps.Release(c.First, c.Versions)
	r.noteGoneLocked(c.Ops)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.events.Publish(c.Ops)
	return nil
}

// reload makes the memory the database's again (the log could not be
// followed, or a write failed after its commands ran).
func (r *replicaCore) reload(ctx context.Context) (uint64, error) {
	s := r.s
	snap, err := r.pg.Load(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.events.Fill(ctx, snap.LastEventSeq); err != nil {
		return 0, err
	}
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errWriterClosed
	}
	s.maps.Reset()
	s.gc.Stop()
	if _, err := s.loadReplicaLocked(snap, now); err != nil { // the expired: their timers fire at once
		return 0, err
	}
	return snap.LogVersion, nil
}

// write is one write of the change log with the requests queued when it
// holds the lock: each request's command runs on the caught-up memory, in
// queue order, and their ops are committed as one change. It reports
// whether the write must be retried (it failed before taking any request).
func (r *replicaCore) write() (retry bool) {
	s := r.s
	ctx, cancel := context.WithTimeout(context.Background(), replicaWriteTimeout)
	defer cancel()
	var taken []*writeReq
	start := time.Now()
	c, ran, err := r.follower.Write(ctx, r.pg, func(uint64) ([]store.Op, uint64, error) {
		taken = r.writer.take()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.maps.Hold()
		now := s.clock.Now()
		var ops []store.Op
		for _, q := range taken {
			ch, e := q.cmd(s.mesh, now)
			q.e = e
			ops = append(ops, ch...)
			close(q.decided)
		}
		return ops, s.maps.Held(), nil
	}, func(c store.Change, err error) error {
		if err != nil || c.Versions == 0 {
			s.maps.Abort() // nothing stored: the lines go (the memory is reloaded)
			return nil
		}
		return r.committed(c)
	})
	s.metrics.setStoreHealthy(err == nil)
	if err != nil {
		s.log.Error("writing a change failed", "requests", len(taken), "decided", ran, "err", err)
	} else if len(c.Ops) > 0 {
		s.metrics.observeCommit(len(c.Ops), time.Since(start))
	}
	if !ran {
		return err != nil
	}
	for _, q := range taken {
		q.batch.Finish(err)
	}
	return false
}

// noteGoneLocked remembers the replicas a change took over.
func (r *replicaCore) noteGoneLocked(ops []store.Op) {
	for i := range ops {
		if id, hb, ok := ops[i].RemovedReplica(); ok && !hb.Before(r.gone[id]) {
			r.gone[id] = hb
		}
	}
}

// change queues a request's change and waits until it is decided: its
// error, or the batch that is finished once it is committed.
func (r *replicaCore) change(cmd func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError)) (*commit.Batch, *apiError) {
	q := &writeReq{cmd: cmd, decided: make(chan struct{}), batch: commit.NewBatch()}
	if e := r.writer.enqueue(q, false); e != nil {
		return nil, e
	}
	t := time.NewTimer(r.s.cfg.CommitTimeout)
	defer t.Stop()
	select {
	case <-q.decided:
	case <-t.C:
		if q.abandon() {
			return nil, unavailable(ownCause(fmt.Sprintf("the database did not take the change within %v", r.s.cfg.CommitTimeout)))
		}
		<-q.decided // taken meanwhile: decided at once
	}
	if q.e != nil {
		return nil, q.e
	}
	return q.batch, nil
}

// settle queues a change the replica makes by itself (a grace ends, a
// deadline comes, a replica died). It is never refused for load.
func (r *replicaCore) settle(cmd func(m *mesh.Mesh, now time.Time) mesh.Change) {
	q := &writeReq{decided: make(chan struct{}), batch: commit.NewBatch(),
		cmd: func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) { return cmd(m, now), nil }}
	r.writer.enqueue(q, true)
}

// catchUp applies what other replicas committed so far (a node that
// registered elsewhere a moment ago is known here after it), sharing the
// database read with every request that asks at the same time.
func (r *replicaCore) catchUp(ctx context.Context) { r.follower.Refresh(ctx) }

// takeOver marks the nodes still homed on dead replicas offline, last
// seen at the replica's last heartbeat and with their GC clocks from then
// (or from this replica's start, if it started later: nobody is collected
// for the time nobody could hear from them), and removes the replicas'
// rows, in one change.
func (r *replicaCore) takeOver(_ context.Context, dead []store.Replica) {
	r.settle(func(m *mesh.Mesh, now time.Time) mesh.Change {
		var ch mesh.Change
		for _, d := range dead {
			if hb, ok := r.gone[d.ID]; ok && !d.Heartbeat.After(hb) {
				continue // taken over already (by this replica or another) since its last heartbeat
			}
			from := d.Heartbeat
			if from.Before(r.started) {
				from = r.started
			}
			var homed []*mesh.Node
			for _, n := range m.Nodes() {
				if n.Online && !n.LoggedOut && n.Home == d.ID {
					homed = append(homed, n)
				}
			}
			for _, n := range homed {
				seen := n.LastSeen
				if d.Heartbeat.After(seen) {
					seen = d.Heartbeat
				}
				ch = append(ch, m.GoOffline(n, mesh.Absence{LastSeen: seen, ClockFrom: from}, now)...)
			}
			ch = append(ch, store.RemoveReplica(d.ID, d.Heartbeat))
			r.s.log.Warn("replica dead; its nodes taken over", "replica", d.ID, "url", d.URL,
				"last_heartbeat", d.Heartbeat, "nodes", len(homed))
		}
		return ch
	})
}

// rejoin is called when this replica's row is gone (the others declared it
// dead while it was cut from the database): it joins again. Its streams
// closed as it applied the change that took its nodes over; the nodes
// reconnect and are homed again.
func (r *replicaCore) rejoin(ctx context.Context) {
	if err := r.pg.JoinReplicas(ctx, r.s.cfg.ReplicaURL); err != nil {
		r.s.log.Error("rejoining the replicas failed; retrying at the next heartbeat", "err", err)
	}
}

// cutOff is called when no heartbeat has reached the database for the
// replica timeout (cut), and when one does again. Cut off, the replica may
// be declared dead by the others, and its nodes marked offline and, after
// their GC timeout, deleted, while they stream here: so it ends its
// streams, and refuses changes at once (a stream opens with one), and its
// nodes move to replicas that can write. A node with no other replica
// comes back once the link is.
func (r *replicaCore) cutOff(cut bool) {
	r.writer.refuse(cut)
	if !cut {
		return
	}
	r.s.mu.Lock()
	r.s.presence.CloseStreams()
	r.s.mu.Unlock()
}

// pruneChanges deletes change log rows older than the retention.
func (r *replicaCore) pruneChanges() {
	ctx, cancel := context.WithTimeout(context.Background(), replicaWriteTimeout)
	defer cancel()
	if _, err := r.pg.PruneChanges(ctx, changeRetention, 10_000); err != nil {
		r.s.log.Warn("pruning the change log", "err", err)
	}
}

// close stops the writer (after its write in progress), the follower, the
// heartbeats and the change log's pruning.
func (r *replicaCore) close() {
	if r.stopPrune != nil {
		r.stopPrune()
	}
	r.writer.close()
	r.cancel()
	r.wg.Wait()
}
