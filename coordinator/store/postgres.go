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
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/meshinit/meshinit/meshapi"
)

// Postgres is the Store on a PostgreSQL database (pgx). Its schema is the
// SQLite one, with the same encodings (times in Unix nanoseconds, lists as
// JSON arrays), created on first open and migrated forward on later ones.
//
// One coordinator writes at a time: Open takes a session advisory lock on
// a connection of its own (a second coordinator is refused at once, and the
// lock goes when the holder's session dies, kill -9 included), and stores
// its instance id as the database's owner. Every Apply checks, in its own
// transaction, that it is still the owner, so a coordinator that lost its
// lock (the server restarted) and was replaced by another can never write
// again: it is fenced, not merged.
type Postgres struct {
	pool     *pgxpool.Pool
	cfg      *pgx.ConnConfig // of the lock's own connection
	display  string          // the URL without its password, for messages
	instance string
	log      *slog.Logger

	replica bool // one of several replicas: writes go through WriteChange

	fenced    chan struct{} // closed once another coordinator took over
	fenceOnce sync.Once

	mu     sync.Mutex
	lock   *pgx.Conn // holds the advisory lock; nil while reconnecting
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

var _ Store = (*Postgres)(nil)

// pgOwnerLock is the advisory lock key of "this database has a writer"
// (an arbitrary constant: "meshcrd" in ASCII).
const pgOwnerLock = 0x6d657368637264

// pgMigrateLock serialises migrations of coordinators starting together.
const pgMigrateLock = pgOwnerLock + 1

// Meta rows of the store itself: the writing coordinator's instance id,
// and when it was last seen alive (database clock, Unix seconds).
const (
	metaOwner     = "owner"
	metaOwnerSeen = "owner_seen"
)

// lockCheckInterval is how often the lock's connection is checked (and the
// holder recorded alive); a lost one is retaken every retakeInterval.
const (
	lockCheckInterval = time.Second
	retakeInterval    = 100 * time.Millisecond
)

// applyTimeout bounds one Apply whose context has no deadline.
const applyTimeout = 30 * time.Second

// IsPostgresURL reports whether db names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// OpenPostgres connects to the database at dbURL (postgres://…), creates
// or migrates its schema and makes this coordinator its writer. log gets
// one line when the lock's connection is lost and when it is back.
func OpenPostgres(ctx context.Context, dbURL string, log *slog.Logger) (*Postgres, error) {
	return openOwner(ctx, dbURL, log, 0)
}

// OpenPostgresStandby is OpenPostgres for a standby taking over: it also
// refuses (ErrInUse) while the last holder was seen alive less than
// patience ago, measured on the database's clock. The holder records that
// it is alive every second from its lock's connection, and retakes its
// lock at once when the connection comes back after a restart of the
// server: patience gives it the time to, so that a restart of the database
// does not hand the mesh to a standby.
func OpenPostgresStandby(ctx context.Context, dbURL string, log *slog.Logger, patience time.Duration) (*Postgres, error) {
	return openOwner(ctx, dbURL, log, patience)
}

func openOwner(ctx context.Context, dbURL string, log *slog.Logger, patience time.Duration) (*Postgres, error) {
	s, err := connectPostgres(ctx, dbURL, log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Postgres, error) {
		if s.lock != nil {
			s.lock.Close(context.Background())
		}
		s.pool.Close()
		return nil, err
	}
	if s.lock, err = s.takeLock(ctx); err != nil {
		return fail(err)
	}
	if patience > 0 {
		var age *float64 // seconds since the holder was last seen
		if err := s.lock.QueryRow(ctx, `SELECT extract(epoch FROM clock_timestamp()) - value::double precision
			FROM meta WHERE name = $1`, metaOwnerSeen).Scan(&age); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fail(fmt.Errorf("database %s: %v", s.display, err))
		}
		if age != nil && *age < patience.Seconds() {
			return fail(fmt.Errorf("database %s is %w: its holder was seen %.1fs ago (a standby waits %v)",
				s.display, ErrInUse, *age, patience))
		}
	}
	// Owned from here on: a coordinator that held it before is fenced.
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, metaOwner, s.instance); err != nil {
		return fail(fmt.Errorf("database %s: taking ownership: %v", s.display, err))
	}
	s.seen(ctx)
	go s.keepLock()
	return s, nil
}

// seen records, on the lock's connection, that the holder is alive now.
func (s *Postgres) seen(ctx context.Context) {
	s.mu.Lock()
	c := s.lock
	s.mu.Unlock()
	if c == nil {
		return
	}
	c.Exec(ctx, `INSERT INTO meta (name, value) VALUES ($1, extract(epoch FROM clock_timestamp())::text)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, metaOwnerSeen)
}

// Fenced is closed once this store knows another coordinator took the
// database over: its writes fail from then on, and its owner must stop.
func (s *Postgres) Fenced() <-chan struct{} { return s.fenced }

func (s *Postgres) fence() { s.fenceOnce.Do(func() { close(s.fenced) }) }

// OpenPostgresReplica connects to the database at dbURL as one replica
// among several: no lock, no owner; it writes only through WriteChange.
func OpenPostgresReplica(ctx context.Context, dbURL string, log *slog.Logger) (*Postgres, error) {
	s, err := connectPostgres(ctx, dbURL, log)
	if err != nil {
		return nil, err
	}
	s.replica = true
	close(s.done) // no lock keeper
	return s, nil
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
	pcfg.MaxConns = 4 // one writer, the odd reader; the lock and the listener have their own
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// A server that drops packets must not hold the writer forever;
		// it retries instead.
		pcfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	s := &Postgres{cfg: pcfg.ConnConfig.Copy(), display: display, instance: hex.EncodeToString(id[:]), log: log,
		stop: make(chan struct{}), done: make(chan struct{}), fenced: make(chan struct{})}
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

// takeLock opens the lock's connection and takes the owner lock.
func (s *Postgres) takeLock(ctx context.Context) (*pgx.Conn, error) {
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("database %s: %v", s.display, err)
	}
	var ok bool
	if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(pgOwnerLock)).Scan(&ok); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("database %s: taking its lock: %v", s.display, err)
	}
	if !ok {
		c.Close(ctx)
		return nil, fmt.Errorf("database %s is %w: stop it first, pass another --db, or run this one as a standby (--standby)", s.display, ErrInUse)
	}
	return c, nil
}

// keepLock checks the lock's connection and, when the server dropped it (a
// restart), takes the lock again. If another coordinator took it meanwhile,
// this one is fenced already (see Apply) and says so.
func (s *Postgres) keepLock() {
	defer close(s.done)
	wait := lockCheckInterval
	for {
		select {
		case <-s.stop:
			return
		case <-time.After(wait): // a check's pacing, not synchronisation
		}
		wait = lockCheckInterval
		ctx, cancel := context.WithTimeout(context.Background(), lockCheckInterval)
		s.mu.Lock()
		c := s.lock
		s.mu.Unlock()
		if c != nil {
			if err := c.Ping(ctx); err == nil {
				s.seen(ctx)
				cancel()
				continue
			}
			s.log.Warn("database lock connection lost; retaking it", "db", s.display)
			c.Close(ctx)
			s.mu.Lock()
			s.lock = nil
			s.mu.Unlock()
		}
		c, err := s.takeLock(ctx)
		cancel()
		if errors.Is(err, ErrInUse) {
			s.log.Error("another meshcoord took the database over; this one can no longer write", "db", s.display)
			s.fence()
			return
		}
		if err != nil {
			wait = retakeInterval
			continue
		}
		s.mu.Lock()
		if s.closed {
			c.Close(context.Background())
		} else {
			s.lock = c
			s.log.Info("database lock retaken", "db", s.display)
		}
		s.mu.Unlock()
		s.seen(context.Background())
	}
}

// Close releases the lock and the connections.
func (s *Postgres) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.mu.Lock()
	if s.lock != nil {
		s.lock.Close(context.Background())
		s.lock = nil
	}
	s.mu.Unlock()
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

// ErrInUse is the error of OpenPostgres when another coordinator writes
// to the database.
var ErrInUse = errors.New("in use by another meshcoord")

// ErrFenced is the error of writes by a coordinator that another one
// replaced as the database's writer.
var ErrFenced = errors.New("another meshcoord took over the database")

// Apply implements Store: the ops, in order, in one transaction sent as
// one round trip, after checking that this coordinator still owns the
// database.
func (s *Postgres) Apply(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	if s.replica {
		return errors.New("store: a replica writes through WriteChange")
	}
	if _, ok := ctx.Deadline(); !ok {
		// A connection that went silent (no reset) fails the batch, which
		// the writer retries, rather than hanging it.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, applyTimeout)
		defer cancel()
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	var b pgx.Batch
	// FOR SHARE: a coordinator taking over (which writes this row) waits
	// for this transaction, and this one sees its write once committed.
	b.Queue(`SELECT value FROM meta WHERE name = $1 FOR SHARE`, metaOwner)
	for i := range ops {
		if err := queueOp(&b, &ops[i]); err != nil {
			return err
		}
	}
	res := tx.SendBatch(ctx, &b)
	var owner string
	if err := res.QueryRow().Scan(&owner); err != nil {
		res.Close()
		return fmt.Errorf("checking the database's owner: %w", err)
	}
	if owner != s.instance {
		res.Close()
		s.fence()
		return fmt.Errorf("%w (%s): this one can no longer write; stop it", ErrFenced, s.display)
	}
	for i := range ops {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return opError(&ops[i], err)
		}
	}
	if err := res.Close(); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

var (
	pgPutKey = `INSERT INTO auth_keys (` + keyColumns + `) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)
		ON CONFLICT (id) DO UPDATE SET hash=excluded.hash, description=excluded.description,
		ephemeral=excluded.ephemeral, reusable=excluded.reusable, tags=excluded.tags,
		created=excluded.created, expires=excluded.expires, revoked=excluded.revoked,
		ephemeral_timeout=excluded.ephemeral_timeout, uses=excluded.uses`
	pgPutNode = `INSERT INTO nodes (` + nodeColumns + `)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17) ` + nodeUpdate
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
		if op.name == metaOwner || op.name == metaOwnerSeen {
			return fmt.Errorf("store: meta %q is the store's own", op.name)
		}
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
	rows, _ := tx.Query(ctx, `SELECT name, value FROM meta`)
	var k, v string
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		if k != metaOwner && k != metaOwnerSeen {
			snap.Meta[k] = v
		}
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
