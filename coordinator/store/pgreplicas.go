package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// The replicas of one mesh on one PostgreSQL database, and their liveness
// (docs/replicas.md). Heartbeats and their expiry are measured on the
// database's clock, so replicas whose clocks disagree still agree on who is
// alive.

// Replica is a row of the replicas table.
type Replica struct {
	ID  string
	URL string
	// Started and Heartbeat are the database's times of the replica's
	// registration and of its last heartbeat.
	Started, Heartbeat time.Time
}

// Instance returns the id this store was opened with: the replica's id.
func (s *Postgres) Instance() string { return s.instance }

// JoinReplicas adds this replica (its Instance) to the replicas table,
// reachable at url by the others (for the relay).
func (s *Postgres) JoinReplicas(ctx context.Context, url string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO replicas (id, url, started, heartbeat) VALUES ($1, $2, now(), now())
		ON CONFLICT (id) DO UPDATE SET url = excluded.url, heartbeat = now()`, s.instance, url)
	if err != nil {
		return fmt.Errorf("joining the replicas: %w", err)
	}
	return nil
}

// Heartbeat records that this replica is alive now. alive is false when
// its row is gone: the others declared it dead (it was cut from the
// database for longer than the timeout) and took its nodes over.
func (s *Postgres) Heartbeat(ctx context.Context) (alive bool, err error) {
	tag, err := s.pool.Exec(ctx, `UPDATE replicas SET heartbeat = now() WHERE id = $1`, s.instance)
	if err != nil {
		return false, fmt.Errorf("heartbeat: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Replicas returns every replica in the table, oldest first.
func (s *Postgres) Replicas(ctx context.Context) ([]Replica, error) {
	return s.replicas(ctx, `SELECT id, url, started, heartbeat FROM replicas ORDER BY started, id`)
}

// DeadReplicas returns the replicas whose last heartbeat is older than
// timeout on the database's clock.
func (s *Postgres) DeadReplicas(ctx context.Context, timeout time.Duration) ([]Replica, error) {
	return s.replicas(ctx, `SELECT id, url, started, heartbeat FROM replicas
		WHERE heartbeat < now() - make_interval(secs => $1) ORDER BY started, id`, timeout.Seconds())
}

func (s *Postgres) replicas(ctx context.Context, query string, args ...any) ([]Replica, error) {
	rows, _ := s.pool.Query(ctx, query, args...)
	var out []Replica
	var r Replica
	_, err := pgx.ForEachRow(rows, []any{&r.ID, &r.URL, &r.Started, &r.Heartbeat}, func() error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the replicas: %w", err)
	}
	return out, nil
}

// RemoveReplica is the op that deletes a replica declared dead at its
// last heartbeat, written in the change that takes its nodes over, so that
// only one replica does. The heartbeat tells that takeover from a later
// one: a replica that was cut from the database, declared dead and
// rejoined under the same id is taken over again when it dies again.
func RemoveReplica(id string, heartbeat time.Time) Op {
	return Op{kind: opRemoveReplica, name: id, value: strconv.FormatInt(nanos(heartbeat), 10)}
}

// RemovedReplica returns the id a RemoveReplica op deletes, and the last
// heartbeat it was declared dead at (zero if the op did not say).
func (o *Op) RemovedReplica() (id string, heartbeat time.Time, ok bool) {
	if o.kind != opRemoveReplica {
		return "", time.Time{}, false
	}
	n, _ := strconv.ParseInt(o.value, 10, 64)
	return o.name, unnanos(n), true
}
