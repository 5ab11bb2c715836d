package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/gc"
	"github.com/meshinit/meshinit/coordinator/maps"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/presence"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/internal/asynclog"
	"github.com/meshinit/meshinit/meshapi"
)

// Server is the coordinator. Create it with New, serve Handler (the node API,
// health and metrics, plus the admin API when an admin token is set) and
// AdminHandler (the admin API for the local socket), and Close it at the end.
//
// It is the wiring of parts that each have one job (see doc.go): the state
// and its rules (mesh), the store's writer (commit), the map change log that
// feeds the streams (maps), the event history (eventlog), presence and the
// reconnect grace (presence), the GC timers (gc), the clock, and the HTTP
// APIs in this package.
type Server struct {
	cfg      Config
	log      *slog.Logger // never blocks: lines are queued (see asynclog)
	closeLog func()       // flushes and stops the queue, if it is ours
	clock    clock.Clock
	st       store.Store
	w        *commit.Queue // the store's writer
	metrics  *metrics
	// policyMetrics count policy loads and map lines withheld (policy_api.go).
	policyMetrics *policyMetrics

	epoch  string        // names this run: map versions are comparable within it
	maps   *maps.Log     // the map lines that streams copy, and full maps
	events *eventlog.Log // the stored lifecycle events, for followers

	// mu orders every change (see core.go) and guards what follows.
	mu       sync.Mutex
	closed   bool
	mesh     *mesh.Mesh
	presence *presence.Table
	gc       *gc.Timers
	// nodeGone hears of deleted and logged-out nodes (see relayhook.go).
	nodeGone func(meshapi.Key)

	// self is this replica's id, the home of the nodes it streams to
	// (replica mode; "" on SQLite), and rep its replica-mode part (nil on
	// SQLite: see replica.go).
	self string
	rep  *replicaCore

	done          chan struct{} // closed by Close: ends event streams
	stopHeartbeat func()        // SQLite: the alive mark restore reads (replicas beat in replica.Liveness)
	stopPruner    func()
}

// metaHeartbeat names the last time this coordinator was known alive, in
// the store.
const metaHeartbeat = "heartbeat"

// streamShards is how many wake groups map streams are split into (see
// deltalog): at most 1/streamShards of the streams are runnable at once.
const streamShards = 16

// heartbeatInterval is how often the coordinator stores that it is alive. It
// bounds how stale last_seen is for nodes that were online at a crash.
const heartbeatInterval = 5 * time.Second

// New loads the state from st and starts the writer. st is owned by the
// Server from now on (Close closes it). On a PostgreSQL store the server is
// one replica among any number on the same database (replica.go).
func New(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	now := cfg.Clock.Now()
	s := &Server{cfg: cfg, clock: cfg.Clock, st: st, done: make(chan struct{})}
	s.log, s.closeLog = nonBlocking(cfg.Logger)
	s.metrics = newMetrics(s)
	s.policyMetrics = newPolicyMetrics(s.metrics.reg)
	s.metrics.onStreams = s.adaptBatching
	s.presence = presence.New(s.clock, cfg.ReconnectGrace, s.graceEnded)
	s.gc = gc.New(s.clock, s.gcDue)
	if pg, ok := st.(*store.Postgres); ok {
		err = s.startReplica(ctx, pg, now)
	} else {
		err = s.startSingle(ctx, now)
	}
	if err != nil {
		s.mu.Lock()
		s.closed = true // timers armed while loading do nothing
		s.gc.Stop()
		s.presence.CloseAll()
		s.mu.Unlock()
		if s.rep != nil && s.rep.cancel != nil {
			s.rep.close()
		}
		s.closeLog()
		return nil, err
	}
	s.stopPruner = clock.Repeat(s.clock, 0, eventlog.PruneInterval(cfg.EventRetention), s.pruneEvents)
	return s, nil
}

// startSingle loads the state as the only coordinator of st (SQLite) and
// starts the writer and the heartbeat.
func (s *Server) startSingle(ctx context.Context, now time.Time) error {
	var eb [8]byte
	if _, err := rand.Read(eb[:]); err != nil {
		return fmt.Errorf("making an epoch: %w", err)
	}
	s.epoch = hex.EncodeToString(eb[:])
	s.w = commit.New(s.st, s.log, s.cfg.MaxQueuedWrites, commit.Hooks{
		Healthy: s.metrics.setStoreHealthy, Observed: s.metrics.observeCommit, Committed: func(ops []store.Op) { s.events.Publish(ops) },
	})
	// Versions start from the clock (in microseconds), so a client that
	// resumes with a version from an earlier run (without its epoch) is
	// all but certain to hold a version this log never had, and gets a
	// full map. The epoch parameter makes it certain.
	s.maps = s.newMaps(uint64(time.Now().UnixMicro()))
	if err := s.restore(ctx, now); err != nil {
		return err
	}
	go s.w.Run()
	s.stopHeartbeat = clock.Repeat(s.clock, heartbeatInterval, heartbeatInterval, s.heartbeat)
	return nil
}

// newMaps returns the map log of the epoch, its first line at base+1.
func (s *Server) newMaps(base uint64) *maps.Log {
	return maps.New(maps.Config{
		Epoch: s.epoch, BaseVersion: base, Size: s.cfg.DeltaLogSize, Shards: streamShards,
		Domain: s.cfg.BaseDomain, Keepalive: s.cfg.KeepaliveInterval, Deltas: s.metrics.deltas,
	})
}

// adaptBatching sets the map log's wake round for open streams so that all
// streams together stay within cfg.StreamWriteBudget writes per second.
func (s *Server) adaptBatching(open int64) {
	d := time.Duration(open) * time.Second / time.Duration(s.cfg.StreamWriteBudget)
	s.maps.SetWakeInterval(min(d, maxWakeInterval))
}

// Epoch returns the identifier of this run (see meshapi.MapMessage.Epoch).
func (s *Server) Epoch() string { return s.epoch }

// Close stops timers and streams and waits until every queued change is
// stored, then closes the store. Nodes that are online stay stored as
// online: the next start counts their GC clock from then.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	// The nodes stay online in memory and in the store; their stream
	// handlers, finding the stream no longer theirs, start no grace.
	s.presence.CloseAll()
	s.gc.Stop()
	s.mu.Unlock()
	close(s.done)
	s.stopPruner()
	if s.rep != nil {
		s.rep.close()
	} else {
		s.stopHeartbeat()
		s.w.Close()
	}
	err := s.st.Close()
	s.closeLog()
	return err
}

// nonBlocking returns a logger that writes to l's handler through a queue,
// so that no request, timer or commit ever waits for the log output, and
// the function that flushes and stops that queue.
func nonBlocking(l *slog.Logger) (*slog.Logger, func()) {
	h := asynclog.New(l.Handler(), 0)
	if h == l.Handler() { // already queued by the caller, who closes it
		return l, func() {}
	}
	return slog.New(h), func() { h.Close(time.Second) }
}

// heartbeat stores that the coordinator is alive now. It bounds how stale
// last_seen is for nodes that were online at a crash (see restore).
func (s *Server) heartbeat() {
	if full, _ := s.w.Overloaded(); !full {
		s.w.Enqueue(store.SetMeta(metaHeartbeat, strconv.FormatInt(s.clock.Now().UnixNano(), 10)))
	}
}
