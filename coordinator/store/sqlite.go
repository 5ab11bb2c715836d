package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	_ "modernc.org/sqlite" // registers the "sqlite" driver (pure Go)
)

// SQLite is the default Store: one database file in WAL mode, created with
// its schema on first open and migrated forward on later ones. The file is
// locked while open, so two coordinators never share it.
type SQLite struct {
	db   *sql.DB
	lock *os.File
	path string
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	if path == "" {
		return nil, errors.New("database path is empty: pass --db FILE")
	}
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("database path %q: '?' and '#' are not allowed in the file name", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating the database directory: %w", err)
		}
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	// synchronous=NORMAL in WAL mode loses nothing when the process dies (a
	// kill -9 included); only a power cut may drop the last transactions.
	dsn := "file:" + path + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// One connection: the coordinator has a single writer, and SQLite
	// serialises writers anyway; readers (Load, Events) are rare.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	s := &SQLite{db: db, lock: lock, path: path}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("database %s: %w", path, err)
	}
	return s, nil
}

// Path returns the database file name.
func (s *SQLite) Path() string { return s.path }

// Close closes the database and releases its lock.
func (s *SQLite) Close() error {
	err := s.db.Close()
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// SchemaVersion returns how many migrations the database has applied.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	return v, err
}

func (s *SQLite) migrate(ctx context.Context) error {
	have, err := s.SchemaVersion(ctx)
	if err != nil {
		return fmt.Errorf("reading schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this meshcoord knows (%d): use a newer meshcoord", have, len(migrations))
	}
	for v := have; v < len(migrations); v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		// PRAGMA takes no bound parameters; v is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}

// Apply implements Store.
func (s *SQLite) Apply(ctx context.Context, ops []Op) error {
	if len(ops) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for i := range ops {
		if err := apply(ctx, tx, &ops[i]); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func apply(ctx context.Context, tx *sql.Tx, op *Op) error {
	var err error
	switch op.kind {
	case opPutKey:
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO auth_keys (`+keyColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?)`, keyArgs(&op.key)...)
		if err != nil {
			err = fmt.Errorf("storing key %s: %w", op.key.ID, err)
		}
	case opPutNode:
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes (`+nodeColumns+`)
			VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) `+nodeUpdate, nodeArgs(&op.node)...)
		if err != nil {
			err = fmt.Errorf("storing node %d: %w", op.node.ID, err)
		}
	case opDeleteNode:
		_, err = tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?`, int64(op.id))
		if err != nil {
			err = fmt.Errorf("deleting node %d: %w", op.id, err)
		}
	case opAddEvent:
		e := &op.event
		_, err = tx.ExecContext(ctx, `INSERT INTO events (seq, time, type, node_id, name, reason, detail)
			VALUES (?,?,?,?,?,?,?)`,
			int64(e.Seq), nanos(e.Time), string(e.Type), int64(e.NodeID), e.Name, string(e.Reason), e.Detail)
		if err != nil {
			err = fmt.Errorf("storing event %d: %w", e.Seq, err)
		}
	case opSetMeta:
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO meta (name, value) VALUES (?,?)`, op.name, op.value)
		if err != nil {
			err = fmt.Errorf("storing %s: %w", op.name, err)
		}
	case opRemoveReplica:
		err = errors.New("store: SQLite has no replicas")
	default:
		err = fmt.Errorf("store: unknown op %d", op.kind)
	}
	return err
}

// Load implements Store.
func (s *SQLite) Load(ctx context.Context) (*Snapshot, error) {
	snap := &Snapshot{Meta: map[string]string{}}
	rows, err := s.db.QueryContext(ctx, `SELECT name, value FROM meta`)
	if err != nil {
		return nil, fmt.Errorf("loading meta: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, err
		}
		snap.Meta[k] = v
	}
	if err := closeRows(rows); err != nil {
		return nil, fmt.Errorf("loading meta: %w", err)
	}
	if snap.Keys, err = s.loadKeys(ctx); err != nil {
		return nil, fmt.Errorf("loading keys: %w", err)
	}
	if snap.Nodes, err = s.loadNodes(ctx); err != nil {
		return nil, fmt.Errorf("loading nodes: %w", err)
	}
	var seq sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(seq) FROM events`).Scan(&seq); err != nil {
		return nil, fmt.Errorf("loading events: %w", err)
	}
	snap.LastEventSeq = uint64(seq.Int64)
	return snap, nil
}

func (s *SQLite) loadKeys(ctx context.Context) ([]KeyRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+keyColumns+` FROM auth_keys ORDER BY created, id`)
	if err != nil {
		return nil, err
	}
	var out []KeyRecord
	var raw rawKey
	for rows.Next() {
		if err := rows.Scan(raw.dest()...); err != nil {
			rows.Close()
			return nil, err
		}
		k, err := raw.decode()
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, k)
	}
	return out, closeRows(rows)
}

func (s *SQLite) loadNodes(ctx context.Context) ([]NodeRecord, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+nodeColumns+` FROM nodes ORDER BY id`)
	if err != nil {
		return nil, err
	}
	var out []NodeRecord
	var raw rawNode
	for rows.Next() {
		if err := rows.Scan(raw.dest()...); err != nil {
			rows.Close()
			return nil, err
		}
		n, err := raw.decode()
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, n)
	}
	return out, closeRows(rows)
}

// Events implements Store.
func (s *SQLite) Events(ctx context.Context, after uint64, limit int) ([]meshapi.Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, time, type, node_id, name, reason, detail
		FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), limit)
	if err != nil {
		return nil, fmt.Errorf("reading events: %w", err)
	}
	var out []meshapi.Event
	for rows.Next() {
		var e meshapi.Event
		var seq, t, node int64
		var typ, reason string
		if err := rows.Scan(&seq, &t, &typ, &node, &e.Name, &reason, &e.Detail); err != nil {
			rows.Close()
			return nil, err
		}
		e.Seq, e.Time, e.Type, e.NodeID, e.Reason = uint64(seq), unnanos(t), meshapi.EventType(typ), meshapi.NodeID(node), meshapi.DeleteReason(reason)
		out = append(out, e)
	}
	return out, closeRows(rows)
}

// PruneEvents implements Store.
func (s *SQLite) PruneEvents(ctx context.Context, before time.Time, limit int) (n int, through uint64, err error) {
	rows, err := s.db.QueryContext(ctx, `DELETE FROM events WHERE seq IN (
		SELECT seq FROM events WHERE time < ? AND seq < (SELECT MAX(seq) FROM events)
		ORDER BY seq LIMIT ?) RETURNING seq`, nanos(before), limit)
	if err != nil {
		return 0, 0, fmt.Errorf("pruning events: %w", err)
	}
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("pruning events: %w", err)
		}
		n++
		through = max(through, uint64(seq))
	}
	if err := closeRows(rows); err != nil {
		return 0, 0, fmt.Errorf("pruning events: %w", err)
	}
	return n, through, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func unnanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// jsonList stores a list as a JSON array ("[]" for none, never "null").
func jsonList[T any](v []T) string {
	if len(v) == 0 {
		return "[]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		// Tags are strings and endpoints netip.AddrPort: both always marshal.
		panic(fmt.Sprintf("store: marshalling %T: %v", v, err))
	}
	return string(b)
}
