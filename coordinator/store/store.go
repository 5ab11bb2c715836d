// Package store is the coordinator's durable memory: the Store interface
// and its default implementation on an embedded SQLite file.
//
// The coordinator keeps its authoritative state in memory and writes every
// change through to a Store from a single writer goroutine, in order, as
// batches of Ops (one transaction each). At start it loads everything back
// with Load. A Store is therefore simple: no queries beyond Load and the
// event history, and no concurrency beyond one writer plus the odd reader.
package store

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// Store persists the coordinator's state.
type Store interface {
	// Load returns everything stored.
	Load(ctx context.Context) (*Snapshot, error)
	// Apply runs ops in order in one transaction: all or nothing.
	Apply(ctx context.Context, ops []Op) error
	// Events returns up to limit events with Seq > after, oldest first.
	Events(ctx context.Context, after uint64, limit int) ([]meshapi.Event, error)
	// PruneEvents deletes up to limit events older than before, oldest
	// first, and returns how many it deleted and the highest Seq among
	// them. It never deletes the newest event, so the sequence continues
	// from it after a restart.
	PruneEvents(ctx context.Context, before time.Time, limit int) (n int, through uint64, err error)
	// Close releases the store.
	Close() error
}

// Snapshot is the whole stored state.
type Snapshot struct {
	Meta         map[string]string
	Keys         []KeyRecord
	Nodes        []NodeRecord
	LastEventSeq uint64
	// LogVersion is the change log's last version this snapshot includes
	// (PostgreSQL; always 0 on SQLite, which has no change log).
	LogVersion uint64
}

// KeyRecord is a stored auth key. The secret is kept only as its hash.
type KeyRecord struct {
	ID               string
	Hash             [32]byte
	Description      string
	Ephemeral        bool
	Reusable         bool
	Tags             []string
	Created          time.Time
	Expires          time.Time // zero: never
	Revoked          time.Time // zero: not revoked
	EphemeralTimeout time.Duration
	Uses             int
}

// NodeRecord is a stored node.
type NodeRecord struct {
	ID         uint64
	Name       string
	Hostname   string
	IPv4       netip.Addr
	IPv6       netip.Addr
	PublicKey  [32]byte
	Endpoints  []netip.AddrPort
	Ephemeral  bool
	Tags       []string
	Created    time.Time
	LastSeen   time.Time
	KeyID      string
	SecretHash [32]byte
	LoggedOut  bool
	// Online is true while the node holds its map stream (or is within its
	// reconnect grace). A node stored online when the coordinator went down
	// gets a fresh GC clock at the next start.
	Online bool
	// GCTimeout is the node's own ephemeral timeout (from its key); zero
	// means the server default.
	GCTimeout time.Duration
	// GCDeadline is when an offline ephemeral node is collected (zero: none).
	GCDeadline time.Time
	// Home is the replica that holds the node's map stream (PostgreSQL
	// replicas; empty on SQLite, and while the node holds none).
	Home string `json:",omitempty"`
}

// Op is one write. Build it with PutKey, PutNode, DeleteNode, AddEvent or
// SetMeta.
type Op struct {
	kind  opKind
	key   KeyRecord
	node  NodeRecord
	id    uint64
	event meshapi.Event
	name  string
	value string
}

type opKind uint8

const (
	opPutKey opKind = iota + 1
	opPutNode
	opDeleteNode
	opAddEvent
	opSetMeta
	opRemoveReplica // PostgreSQL replicas only
)

// PutKey inserts or replaces a key.
func PutKey(k KeyRecord) Op { return Op{kind: opPutKey, key: k} }

// PutNode inserts or replaces a node.
func PutNode(n NodeRecord) Op { return Op{kind: opPutNode, node: n} }

// DeleteNode removes a node (no error if it is absent).
func DeleteNode(id uint64) Op { return Op{kind: opDeleteNode, id: id} }

// AddEvent appends an event; its Seq must be new.
func AddEvent(e meshapi.Event) Op { return Op{kind: opAddEvent, event: e} }

// SetMeta sets a named value (the mesh's ULA prefix, the last node id, …).
func SetMeta(name, value string) Op { return Op{kind: opSetMeta, name: name, value: value} }

// Event returns the event an AddEvent op appends.
func (o *Op) Event() (meshapi.Event, bool) { return o.event, o.kind == opAddEvent }

// Open opens the database db names: a PostgreSQL database for a
// postgres:// or postgresql:// URL, else a SQLite file. log gets the
// store's own lines (PostgreSQL's connection troubles).
func Open(ctx context.Context, db string, log *slog.Logger) (Store, error) {
	if IsPostgresURL(db) {
		return OpenPostgres(ctx, db, log)
	}
	return OpenSQLite(ctx, db)
}

// Redacted returns db as it may be logged: a URL loses its password.
func Redacted(db string) string {
	if IsPostgresURL(db) {
		return redactURL(db)
	}
	return db
}

// Key returns the record a PutKey op writes.
func (o *Op) Key() (KeyRecord, bool) { return o.key, o.kind == opPutKey }

// Node returns the record a PutNode op writes.
func (o *Op) Node() (NodeRecord, bool) { return o.node, o.kind == opPutNode }

// Deleted returns the id of the node a DeleteNode op removes.
func (o *Op) Deleted() (uint64, bool) { return o.id, o.kind == opDeleteNode }

// Meta returns the name and value a SetMeta op sets.
func (o *Op) Meta() (name, value string, ok bool) { return o.name, o.value, o.kind == opSetMeta }
