package coordinator

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/coordinator/names"
)

// Config tunes a Server. The zero value of each field means its default.
type Config struct {
	// BaseDomain is appended to node names to make FQDNs (mesh.internal).
	BaseDomain string
	// EphemeralTimeout is how long an ephemeral node may stay offline before
	// it is collected, unless its key says otherwise (10m).
	EphemeralTimeout time.Duration
	// ReconnectGrace is how long a node whose stream dropped still counts as
	// online, so a quick reconnect is not an offline/online flap (5s).
	ReconnectGrace time.Duration
	// KeepaliveInterval is how often an idle map stream gets a keepalive (15s).
	KeepaliveInterval time.Duration
	// WriteTimeout bounds one write to a stream; a peer that cannot take a
	// line in this time is disconnected (10s).
	WriteTimeout time.Duration
	// CommitTimeout bounds how long a request waits for its change to be
	// stored before it answers 503 (10s).
	CommitTimeout time.Duration
	// AdminToken, when set, allows the admin API over TCP with
	// "Authorization: Bearer <token>". Without it the admin API is only on
	// the admin socket.
	AdminToken string
	// DeltaLogSize is how many recent map changes are kept for resuming
	// streams and for slow readers (16384).
	DeltaLogSize int
	// StreamWriteBudget bounds how many batched writes per second all map
	// streams together make under churn (20 000): with S streams open,
	// changes are delivered in batches at most every S/budget seconds
	// (capped at 500ms), while an isolated change goes out at once. It
	// trades a little latency for not spending the machine on syscalls.
	StreamWriteBudget int
	// EventLogSize is how many recent events are kept in memory for
	// "events --follow"; older ones are read from the store (10000).
	EventLogSize int
	// EventRetention is how long stored events are kept (7 days): older
	// ones are deleted, so the database does not grow with the age of the
	// mesh. The newest event is always kept.
	EventRetention time.Duration
	// MaxQueuedWrites bounds the store writes queued behind the disk
	// (20 000). Beyond it, calls that change state answer a retryable 503
	// instead of queueing more (the store is slow or failing).
	MaxQueuedWrites int
	// ReplicaURL is this server's URL as other replicas on the same
	// PostgreSQL database reach it (stored in the replicas table; unused
	// on SQLite).
	ReplicaURL string
	// Logger receives one line per event and per problem (slog.Default()).
	Logger *slog.Logger
	// Clock is the time of the lifecycle rules: change times, the grace,
	// GC deadlines, reclaim windows, heartbeats, retention (clock.Real).
	Clock clock.Clock
}

// Defaults of Config.
const (
	DefaultBaseDomain        = "mesh.internal"
	DefaultEphemeralTimeout  = 10 * time.Minute
	DefaultReconnectGrace    = 5 * time.Second
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultWriteTimeout      = 10 * time.Second
	DefaultCommitTimeout     = 10 * time.Second
	DefaultDeltaLogSize      = 16384
	DefaultEventLogSize      = 10000
	DefaultStreamWriteBudget = 20000
	DefaultEventRetention    = 7 * 24 * time.Hour
	DefaultMaxQueuedWrites   = 20000
	maxWakeInterval          = 500 * time.Millisecond
)

func (c Config) withDefaults() (Config, error) {
	if c.BaseDomain == "" {
		c.BaseDomain = DefaultBaseDomain
	}
	c.BaseDomain = strings.TrimSuffix(strings.ToLower(c.BaseDomain), ".")
	for _, label := range strings.Split(c.BaseDomain, ".") {
		if !names.Valid(label) {
			return c, fmt.Errorf("base domain %q: %q is not a DNS label (letters, digits, '-')", c.BaseDomain, label)
		}
	}
	def := func(d *time.Duration, v time.Duration, name string) error {
		if *d < 0 {
			return fmt.Errorf("%s %v: must not be negative", name, *d)
		}
		if *d == 0 {
			*d = v
		}
		return nil
	}
	err := errors.Join(
		def(&c.EphemeralTimeout, DefaultEphemeralTimeout, "ephemeral timeout"),
		def(&c.ReconnectGrace, DefaultReconnectGrace, "reconnect grace"),
		def(&c.KeepaliveInterval, DefaultKeepaliveInterval, "keepalive interval"),
		def(&c.WriteTimeout, DefaultWriteTimeout, "write timeout"),
		def(&c.CommitTimeout, DefaultCommitTimeout, "commit timeout"),
		def(&c.EventRetention, DefaultEventRetention, "event retention"),
	)
	if err != nil {
		return c, err
	}
	if c.DeltaLogSize <= 0 {
		c.DeltaLogSize = DefaultDeltaLogSize
	}
	if c.StreamWriteBudget <= 0 {
		c.StreamWriteBudget = DefaultStreamWriteBudget
	}
	if c.EventLogSize <= 0 {
		c.EventLogSize = DefaultEventLogSize
	}
	if c.MaxQueuedWrites <= 0 {
		c.MaxQueuedWrites = DefaultMaxQueuedWrites
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = clock.Real
	}
	return c, nil
}
