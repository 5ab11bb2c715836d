package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/ipam"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/internal/asynclog"
	"github.com/meshinit/meshinit/meshapi"
)

// Server is the coordinator. Create it with New, serve Handler (the node API,
// health and metrics, plus the admin API when an admin token is set) and
// AdminHandler (the admin API for the local socket), and Close it at the end.
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

	// epoch names this run of the coordinator; map versions are only
	// comparable within one epoch.
	epoch   string
	started time.Time
	deltas  *deltalog.Log // map changes, one encoded line each
	events  *eventlog.Log // the stored lifecycle events, for followers

	mu         sync.Mutex
	closed     bool
	nodes      map[meshapi.NodeID]*node
	byName     map[string]*node
	bySecret   map[authkey.Hash]*node
	byPubKey   map[meshapi.Key]*node
	live       []*node // every node in s.nodes, for fast iteration
	keys       map[string]*key
	pool       *ipam.Pool
	lastNodeID uint64
	eventSeq   uint64
	acl        *aclState // the access policy (policy.go)

	// nodeGone hears of deleted and logged-out nodes (see relayhook.go).
	nodeGone func(meshapi.Key)

	done          chan struct{} // closed by Close: ends event streams
	stopHeartbeat func()
	stopPruner    func()
}

// Meta names in the store.
const (
	metaULA        = "ula_prefix"
	metaLastNodeID = "last_node_id"
	metaHeartbeat  = "heartbeat" // last time this coordinator was known alive
)

// streamShards is how many wake groups map streams are split into (see
// deltalog): at most 1/streamShards of the streams are runnable at once.
const streamShards = 16

// heartbeatInterval is how often the coordinator stores that it is alive. It
// bounds how stale last_seen is for nodes that were online at a crash.
const heartbeatInterval = 5 * time.Second

// New loads the state from st and starts the writer. st is owned by the
// Server from now on (Close closes it).
func New(ctx context.Context, cfg Config, st store.Store) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var eb [8]byte
	if _, err := rand.Read(eb[:]); err != nil {
		return nil, fmt.Errorf("making an epoch: %w", err)
	}
	now := cfg.Clock.Now()
	s := &Server{
		cfg: cfg, clock: cfg.Clock, st: st,
		epoch:   hex.EncodeToString(eb[:]),
		started: now,
		// Versions start from the clock (in microseconds), so a client that
		// resumes with a version from an earlier run (without its epoch) is
		// all but certain to hold a version this log never had, and gets a
		// full map. The epoch parameter makes it certain.
		deltas:   deltalog.New(cfg.DeltaLogSize, uint64(time.Now().UnixMicro()), streamShards),
		nodes:    map[meshapi.NodeID]*node{},
		byName:   map[string]*node{},
		bySecret: map[authkey.Hash]*node{},
		byPubKey: map[meshapi.Key]*node{},
		keys:     map[string]*key{},
		acl:      newACLState(),
		done:     make(chan struct{}),
	}
	s.log, s.closeLog = nonBlocking(cfg.Logger)
	s.metrics = newMetrics(s)
	s.policyMetrics = newPolicyMetrics(s.metrics.reg)
	s.metrics.onStreams = s.adaptBatching
	s.w = commit.New(st, s.log, cfg.MaxQueuedWrites, commit.Hooks{
		Healthy: s.metrics.setStoreHealthy, Observed: s.metrics.observeCommit, Committed: func(ops []store.Op) { s.events.Publish(ops) },
	})
	if err := s.restore(ctx, now); err != nil {
		s.closeLog()
		return nil, err
	}
	go s.w.Run()
	s.stopHeartbeat = clock.Repeat(s.clock, heartbeatInterval, heartbeatInterval, s.heartbeat)
	s.stopPruner = clock.Repeat(s.clock, 0, eventlog.PruneInterval(cfg.EventRetention), s.pruneEvents)
	return s, nil
}

// refuseLocked says why a change cannot be started now, or returns nil:
// the coordinator is shutting down, or the store is so far behind that
// queueing more would only grow memory. Both answers are retryable 503s.
// Callers hold s.mu and call it before they change anything.
func (s *Server) refuseLocked() *apiError {
	if s.closed {
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal, "the coordinator is shutting down; retry")
	}
	if full, n := s.w.Overloaded(); full {
		return errorf(http.StatusServiceUnavailable, meshapi.ErrInternal,
			"the coordinator's store is behind (%d writes queued): retry in a moment", n)
	}
	return nil
}

// adaptBatching sets the map log's wake round for open streams so that all
// streams together stay within cfg.StreamWriteBudget writes per second.
func (s *Server) adaptBatching(open int64) {
	d := time.Duration(open) * time.Second / time.Duration(s.cfg.StreamWriteBudget)
	s.deltas.SetWakeInterval(min(d, maxWakeInterval))
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
	for _, n := range s.nodes {
		// The nodes stay online in memory and in the store; their stream
		// handlers, finding the stream no longer theirs, start no grace.
		endSessionLocked(n)
	}
	s.mu.Unlock()
	close(s.done)
	s.stopHeartbeat()
	s.stopPruner()
	s.w.Close()
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

func stopTimer(t *clock.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

// fqdn returns name.BaseDomain.
func (s *Server) fqdn(name string) string { return name + "." + s.cfg.BaseDomain }
