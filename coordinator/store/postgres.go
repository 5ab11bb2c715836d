package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meshinit/meshinit/meshapi"
)

// Postgres is the Store on a PostgreSQL database (pgx). Its schema is the
// SQLite one, with the same encodings (times in Unix nanoseconds, lists as
// JSON arrays), created on first open and migrated forward on later ones,
// plus the change log and the replicas table (docs/replicas.md).
//
// Any number of coordinators (replicas) use one database at once. Every
// write is one change of the log, made under the mesh lock
// (WriteChange): Apply is such a change, for writers that need not catch
// up first (the store's own tests).
type Postgres struct {
	pool     *pgxpool.Pool
	cfg      *pgx.ConnConfig // for the listener's own connection
	display  string          // the URL without its password, for messages
	instance string
	log      *slog.Logger
}

var _ Store = (*Postgres)(nil)

// pgBaseLock is the first of the store's advisory lock keys (an arbitrary
// constant: "meshcrd" in ASCII).
const pgBaseLock = 0x6d657368637264

// pgMigrateLock serialises migrations of coordinators starting together.
const pgMigrateLock = pgBaseLock + 1

// applyTimeout bounds one Apply whose context has no deadline.
const applyTimeout = 30 * time.Second

// IsPostgresURL reports whether db names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// OpenPostgres connects to the database at dbURL (postgres://…) as one
// replica among any number, and creates or migrates its schema. log gets
// the store's own lines (the change log listener's reconnects).
func OpenPostgres(ctx context.Context, dbURL string, log *slog.Logger) (*Postgres, error) {
	return connectPostgres(ctx, dbURL, log)
}

// connectPostgres opens the pool and migrates the schema.
func connectPostgres(ctx context.Context, dbURL string, log *slog.Logger) (*Postgres, error) {
	display := redactURL(dbURL)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL %s: %v", display, err)
	}
	pcfg.MaxConns = 6 // the writer, the follower, heartbeats and the odd reader; the listener has its own
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// A server that drops packets must not hold the writer forever;
		// it retries instead.
		pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s := &Postgres{cfg: pcfg.ConnConfig.Copy(), display: display, instance: hex.EncodeToString(id[:]), log: log}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pcfg); err != nil {
		return nil, fmt.Errorf("database %s: %v", display, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("database %s: %w", display, err)
	}
	return s, nil
}

// redactURL drops the password from a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Close closes the connections.
func (s *Postgres) Close() error {
	s.pool.Close()
	return nil
}

// SchemaVersion returns how many migrations the database has applied.
func (s *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT version FROM meshcoord_schema`).Scan(&v)
	return v, err
}

func (s *Postgres) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	// Coordinators starting together migrate one after the other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(pgMigrateLock)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS meshcoord_schema (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("creating the schema table: %w", err)
	}
	var have int
	switch err := tx.QueryRow(ctx, `SELECT version FROM meshcoord_schema`).Scan(&have); {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO meshcoord_schema (version) VALUES (0)`); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("reading schema version: %w", err)
	}
	if have > len(pgMigrations) {
		return fmt.Errorf("schema version %d is newer than this meshcoord knows (%d): use a newer meshcoord", have, len(pgMigrations))
	}
	for v := have; v < len(pgMigrations); v++ {
		if _, err := tx.Exec(ctx, pgMigrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE meshcoord_schema SET version = $1`, len(pgMigrations)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// Apply implements Store: the ops, in order, as one change of the log
// (taking one version), written without catching up first. A replica
// writes through WriteChange instead.
func (s *Postgres) Apply(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		// A connection that went silent (no reset) fails the write, which
		// the caller retries, rather than hanging it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, applyTimeout)
		defer cancel()
	}
	_, err := s.WriteChange(ctx, NoPrefetch, func(context.Context, ChangeReader, uint64) ([]Op, uint64, error) {
		return ops, 1, nil
	})
	return err
}

var (
	pgPutKey = `INSERT INTO auth_keys (` + keyColumns + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
		ON CONFLICT (id) DO UPDATE SET hash=excluded.hash, description=excluded.description,
		ephemeral=excluded.ephemeral, reusable=excluded.reusable, tags=excluded.tags,
		created=excluded.created, expires=excluded.expires, revoked=excluded.revoked,
		ephemeral_timeout=excluded.ephemeral_timeout, uses=excluded.uses`
	pgPutNode = `INSERT INTO nodes (` + nodeColumns + `)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18) ` + nodeUpdate
)

func queueOp(b *pgx.Batch, op *Op) error {
	switch op.kind {
	case opPutKey:
		b.Queue(pgPutKey, keyArgs(&op.key)...)
	case opPutNode:
		b.Queue(pgPutNode, nodeArgs(&op.node)...)
	case opDeleteNode:
		b.Queue(`DELETE FROM nodes WHERE id = $1`, int64(op.id))
	case opAddEvent:
		e := &op.event
		b.Queue(`INSERT INTO events (seq, time, type, node_id, name, reason, detail) VALUES ($1,$2,$3,$4,$5,$6,$7)`,
			int64(e.Seq), nanos(e.Time), string(e.Type), int64(e.NodeID), e.Name, string(e.Reason), e.Detail)
	case opRemoveReplica:
		b.Queue(`DELETE FROM replicas WHERE id = $1`, op.name)
	case opSetMeta:
		b.Queue(`INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value`,
			op.name, op.value)
	default:
		return fmt.Errorf("store: unknown op %d", op.kind)
	}
	return nil
}

// opError says which op failed, as the SQLite store does.
func opError(op *Op, err error) error {
	switch op.kind {
	case opPutKey:
		return fmt.Errorf("storing key %s: %w", op.key.ID, err)
	case opPutNode:
		return fmt.Errorf("storing node %d: %w", op.node.ID, err)
	case opDeleteNode:
		return fmt.Errorf("deleting node %d: %w", op.id, err)
	case opRemoveReplica:
		return fmt.Errorf("removing replica %s: %w", op.name, err)
	case opAddEvent:
		return fmt.Errorf("storing event %d: %w", op.event.Seq, err)
	default:
		return fmt.Errorf("storing %s: %w", op.name, err)
	}
}

// Load implements Store, reading everything in one consistent snapshot.
func (s *Postgres) Load(ctx context.Context) (*Snapshot, error) {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	snap := &Snapshot{Meta: map[string]string{}}
	// The relay's mesh key stays in the database: only RelayMeshKey reads it.
	rows, _ := tx.Query(ctx, `SELECT name, value FROM meta WHERE name <> $1`, metaRelayMeshKey)
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		snap.Meta[k] = v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("loading meta: %w", err)
	}
	if snap.Keys, err = pgLoadKeys(ctx, tx); err != nil {
		return nil, fmt.Errorf("loading keys: %w", err)
	}
	if snap.Nodes, err = pgLoadNodes(ctx, tx); err != nil {
		return nil, fmt.Errorf("loading nodes: %w", err)
	}
	var seq *int64
	if err := tx.QueryRow(ctx, `SELECT MAX(seq) FROM events`).Scan(&seq); err != nil {
		return nil, fmt.Errorf("loading events: %w", err)
	}
	if seq != nil {
		snap.LastEventSeq = uint64(*seq)
	}
	if snap.LogVersion, err = lastVersion(ctx, tx); err != nil {
		return nil, err
	}
	return snap, nil
}

func pgLoadKeys(ctx context.Context, tx pgx.Tx) ([]KeyRecord, error) {
	rows, _ := tx.Query(ctx, `SELECT `+keyColumns+` FROM auth_keys ORDER BY created, id`)
	var out []KeyRecord
	var raw rawKey
	_, err := pgx.ForEachRow(rows, raw.dest(), func() error {
		k, err := raw.decode()
		out = append(out, k)
		return err
	})
	return out, err
}

func pgLoadNodes(ctx context.Context, tx pgx.Tx) ([]NodeRecord, error) {
	rows, _ := tx.Query(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY id`)
	var out []NodeRecord
	var raw rawNode
	_, err := pgx.ForEachRow(rows, raw.dest(), func() error {
		n, err := raw.decode()
		out = append(out, n)
		return err
	})
	return out, err
}

// Events implements Store.
func (s *Postgres) Events(ctx context.Context, after uint64, limit int) ([]meshapi.Event, error) {
	rows, _ := s.pool.Query(ctx, `SELECT seq, time, type, node_id, name, reason, detail
		FROM events WHERE seq > $1 ORDER BY seq LIMIT $2`, int64(after), limit)
	var out []meshapi.Event
	var seq, t, node int64
	var typ, reason, name, detail string
	_, err := pgx.ForEachRow(rows, []any{&seq, &t, &typ, &node, &name, &reason, &detail}, func() error {
		out = append(out, meshapi.Event{Seq: uint64(seq), Time: unnanos(t), Type: meshapi.EventType(typ),
			NodeID: meshapi.NodeID(node), Name: name, Reason: meshapi.DeleteReason(reason), Detail: detail})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	return out, nil
}

// PruneEvents implements Store.
func (s *Postgres) PruneEvents(ctx context.Context, before time.Time, limit int) (n int, through uint64, err error) {
	rows, _ := s.pool.Query(ctx, `DELETE FROM events WHERE seq IN (
		SELECT seq FROM events WHERE time < $1 AND seq < (SELECT MAX(seq) FROM events)
		ORDER BY seq LIMIT $2) RETURNING seq`, nanos(before), limit)
	var seq int64
	_, err = pgx.ForEachRow(rows, []any{&seq}, func() error {
		n++
		through = max(through, uint64(seq))
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("pruning events: %w", err)
	}
	return n, through, nil
}
