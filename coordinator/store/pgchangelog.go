package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The change log of replicas on one PostgreSQL database (docs/replicas.md).
//
// Every write of every replica is one transaction that holds the mesh
// lock from before it reads the last version until after its commit is
// visible (PostgreSQL releases a transaction's locks only then). So
// changes get their versions in commit order, without gaps, and a reader
// that has applied version V and finds no change starting at V+1 knows
// that nothing after V is committed. A sequence alone would not do: a
// transaction may take number 7, another take 8 and commit first, and a
// reader that moved past 8 would skip 7 for ever.

// pgMeshLock is the advisory lock key of "writing the mesh" (replica mode).
const pgMeshLock = pgBaseLock + 2

// pgChangesChannel is the NOTIFY channel that says "the log grew". It is
// a hint only: a listener reads the log on every hint, after every
// reconnect of its connection, and on a timer.
const pgChangesChannel = "meshcoord_changes"

// Change is one committed write transaction of the change log.
type Change struct {
	// First is the first map version the change takes; it takes Versions
	// of them (at least one), so the next change starts at First+Versions.
	First, Versions uint64
	// Ops are the change's writes, as they were stored.
	Ops []Op
}

// Last is the last version the change takes.
func (c *Change) Last() uint64 { return c.First + c.Versions - 1 }

// ChangeReader reads the change log.
type ChangeReader interface {
	// ChangesAfter returns up to limit changes after version v, in order.
	// It fails when the log does not continue right after v (v is older
	// than what is kept, or not a change boundary): the caller reloads.
	ChangesAfter(ctx context.Context, v uint64, limit int) ([]Change, error)
}

// ErrLogGap is the error of ChangesAfter when the log does not continue
// right after the asked version: reload the state instead.
var ErrLogGap = errors.New("the change log does not continue from this version")

// Decide is the body of a write: called with the mesh lock held, with a
// reader that sees every committed change (to catch up first) and the last
// version of the log, it returns the ops to write and how many map
// versions they take (at least one is taken). An error writes nothing, and
// so do no ops (the change is the zero Change).
type Decide func(ctx context.Context, log ChangeReader, last uint64) (ops []Op, versions uint64, err error)

// WriteChange runs one write of the mesh: lock, decide, store the ops and
// the change, notify, commit. It returns the change as committed. after is
// the last version the writer holds: the changes that follow it are read
// in the same round trip as the lock and the last version, and decide's
// reader serves them from there (it reads on from the table for the rest).
func (s *Postgres) WriteChange(ctx context.Context, after uint64, decide Decide) (Change, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return Change{}, err
	}
	defer tx.Rollback(ctx)
	// One round trip; each statement sees what was committed before it
	// ran, so the reads see every change committed before the lock.
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, int64(pgMeshLock))
	b.Queue(lastVersionSQL)
	b.Queue(changesAfterSQL, int64(after), prefetchChanges)
	res := tx.SendBatch(ctx, &b)
	var last int64
	if _, err := res.Exec(); err != nil {
		res.Close()
		return Change{}, fmt.Errorf("taking the mesh lock: %w", err)
	}
	if err := res.QueryRow().Scan(&last); err != nil {
		res.Close()
		return Change{}, fmt.Errorf("reading the change log's last version: %w", err)
	}
	rows, _ := res.Query()
	pre, preErr := scanChanges(rows, after)
	if err := res.Close(); err != nil {
		return Change{}, err
	}
	ops, n, err := decide(ctx, &prefetched{tx: tx, after: after, changes: pre, err: preErr}, uint64(last))
	if err != nil {
		return Change{}, err
	}
	if len(ops) == 0 {
		return Change{}, nil
	}
	c := Change{First: uint64(last) + 1, Versions: max(n, 1), Ops: ops}
	data, err := json.Marshal(ops)
	if err != nil {
		return Change{}, err
	}
	b = pgx.Batch{}
	for i := range ops {
		if err := queueOp(&b, &ops[i]); err != nil {
			return Change{}, err
		}
	}
	b.Queue(`INSERT INTO changes (first, versions, ops) VALUES ($1, $2, $3)`, int64(c.First), int64(c.Versions), data)
	b.Queue(`SELECT pg_notify($1, $2)`, pgChangesChannel, fmt.Sprint(c.Last()))
	res = tx.SendBatch(ctx, &b)
	for i := range ops {
		if _, err := res.Exec(); err != nil {
			res.Close()
			return Change{}, opError(&ops[i], err)
		}
	}
	if _, err := res.Exec(); err != nil {
		res.Close()
		return Change{}, fmt.Errorf("storing change %d: %w", c.First, err)
	}
	if err := res.Close(); err != nil {
		return Change{}, err
	}
	return c, tx.Commit(ctx)
}

// lastVersionSQL reads the last version of the log (its base when empty).
const lastVersionSQL = `SELECT COALESCE(
	(SELECT first + versions - 1 FROM changes ORDER BY first DESC LIMIT 1),
	(SELECT value::bigint FROM meta WHERE name = 'log_base'), 0)`

// changesAfterSQL reads up to $2 changes after version $1, in order.
const changesAfterSQL = `SELECT first, versions, ops FROM changes WHERE first > $1 ORDER BY first LIMIT $2`

// prefetchChanges is how many changes a write reads with its lock.
const prefetchChanges = 64

// NoPrefetch is the after of a write that reads nothing before it decides.
const NoPrefetch = math.MaxInt64

// lastVersion is the last version of the log.
func lastVersion(ctx context.Context, q pgx.Tx) (uint64, error) {
	var last int64
	if err := q.QueryRow(ctx, lastVersionSQL).Scan(&last); err != nil {
		return 0, fmt.Errorf("reading the change log's last version: %w", err)
	}
	return uint64(last), nil
}

// LastVersion returns the last version of the change log.
func (s *Postgres) LastVersion(ctx context.Context) (uint64, error) {
	var last int64
	if err := s.pool.QueryRow(ctx, lastVersionSQL).Scan(&last); err != nil {
		return 0, fmt.Errorf("reading the change log's last version: %w", err)
	}
	return uint64(last), nil
}

// ChangesAfter implements ChangeReader outside any write: one statement,
// so one consistent view of the table.
func (s *Postgres) ChangesAfter(ctx context.Context, v uint64, limit int) ([]Change, error) {
	rows, _ := s.pool.Query(ctx, changesAfterSQL, int64(v), limit)
	return scanChanges(rows, v)
}

// prefetched is a write's reader: the changes read with the lock, then the
// table in the write's transaction.
type prefetched struct {
	tx      pgx.Tx
	after   uint64
	changes []Change
	err     error
	used    bool
}

func (r *prefetched) ChangesAfter(ctx context.Context, v uint64, limit int) ([]Change, error) {
	// The prefetched changes are all there is when fewer than asked came.
	if !r.used && v == r.after && limit >= prefetchChanges && len(r.changes) < prefetchChanges {
		r.used = true
		return r.changes, r.err
	}
	rows, _ := r.tx.Query(ctx, changesAfterSQL, int64(v), limit)
	return scanChanges(rows, v)
}

// scanChanges reads the rows of changesAfterSQL after version v, checking
// that they follow each other from v on.
func scanChanges(rows pgx.Rows, v uint64) ([]Change, error) {
	var out []Change
	var first, versions int64
	var data []byte
	next := v + 1
	_, err := pgx.ForEachRow(rows, []any{&first, &versions, &data}, func() error {
		if uint64(first) != next {
			return fmt.Errorf("%w: want %d, found %d", ErrLogGap, next, first)
		}
		c := Change{First: uint64(first), Versions: uint64(versions)}
		if err := json.Unmarshal(data, &c.Ops); err != nil {
			return fmt.Errorf("change %d: %w", first, err)
		}
		out = append(out, c)
		next = c.Last() + 1
		return nil
	})
	return out, err
}

// WatchChanges calls wake whenever the log may have grown: on every
// notification, with the last version of the change it announces, and with
// 0 (unknown) after its listening connection (re)connects (what was
// notified meanwhile is lost) and every poll interval whatever happened.
// It returns when ctx ends.
func (s *Postgres) WatchChanges(ctx context.Context, poll time.Duration, wake func(last uint64)) {
	var bo time.Duration
	for ctx.Err() == nil {
		err := s.listen(ctx, poll, wake)
		if ctx.Err() != nil {
			return
		}
		bo = min(max(2*bo, 50*time.Millisecond), 2*time.Second)
		s.log.Warn("change log listener lost; reconnecting", "db", s.display, "err", err, "retry_in", bo)
		wake(0) // the poll goes on without it
		select {
		case <-ctx.Done():
		case <-time.After(bo): // reconnect pacing, not synchronisation
		}
	}
}

// listen runs one listening connection until it fails.
func (s *Postgres) listen(ctx context.Context, poll time.Duration, wake func(uint64)) error {
	c, err := pgx.ConnectConfig(ctx, s.cfg)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "LISTEN "+pgChangesChannel); err != nil {
		return err
	}
	wake(0) // anything notified before LISTEN took effect
	for {
		wctx, cancel := context.WithTimeout(ctx, poll)
		n, err := c.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			v, _ := strconv.ParseUint(n.Payload, 10, 64) // 0 if not ours: read anyway
			wake(v)
		case errors.Is(err, context.DeadlineExceeded):
			wake(0)
		default:
			return err
		}
	}
}

// PruneChanges deletes the changes that end more than keep versions before
// the last one, at most limit of them, oldest first, and returns how many
// it deleted. The newest change always stays: the log's last version is
// read from it. A replica whose cursor is older than what is kept reloads
// (ChangesAfter reports ErrLogGap).
func (s *Postgres) PruneChanges(ctx context.Context, keep uint64, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE first IN (
		SELECT first FROM changes
		WHERE first + versions - 1 + $1 < (SELECT MAX(first + versions - 1) FROM changes)
		  AND first < (SELECT MAX(first) FROM changes)
		ORDER BY first LIMIT $2)`, int64(keep), limit)
	if err != nil {
		return 0, fmt.Errorf("pruning the change log: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// EnsureMeta stores value under name unless the database has a value for
// it already, and returns the value stored: the first replica to start on
// a new database chooses (its IPv6 prefix, its epoch), every other one
// reads the choice. It is not a change of the log: every replica calls it
// for the same names before it loads the state.
func (s *Postgres) EnsureMeta(ctx context.Context, name, value string) (string, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		name, value); err != nil {
		return "", fmt.Errorf("storing %s: %w", name, err)
	}
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT value FROM meta WHERE name = $1`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	return v, nil
}
