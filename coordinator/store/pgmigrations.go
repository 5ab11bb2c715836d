package store

// pgMigrations are the PostgreSQL schema's migrations, applied in order;
// the database remembers how many it has applied in meshcoord_schema.
// Append new ones; never edit a released one. The encodings are SQLite's
// (see migrations), so both stores share their row decoding.
var pgMigrations = []string{
	// 1: the first schema, SQLite's migrations 1 and 2 together.
	`CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE auth_keys (
		id                TEXT PRIMARY KEY,
		hash              BYTEA NOT NULL,
		description       TEXT NOT NULL,
		ephemeral         BOOLEAN NOT NULL,
		reusable          BOOLEAN NOT NULL,
		tags              TEXT NOT NULL,
		created           BIGINT NOT NULL,
		expires           BIGINT NOT NULL,
		revoked           BIGINT NOT NULL,
		ephemeral_timeout BIGINT NOT NULL,
		uses              INTEGER NOT NULL
	);
	CREATE TABLE nodes (
		id          BIGINT PRIMARY KEY,
		name        TEXT NOT NULL UNIQUE,
		hostname    TEXT NOT NULL,
		ipv4        TEXT NOT NULL UNIQUE,
		ipv6        TEXT NOT NULL UNIQUE,
		public_key  BYTEA NOT NULL,
		endpoints   TEXT NOT NULL,
		ephemeral   BOOLEAN NOT NULL,
		tags        TEXT NOT NULL,
		created     BIGINT NOT NULL,
		last_seen   BIGINT NOT NULL,
		key_id      TEXT NOT NULL,
		secret_hash BYTEA NOT NULL UNIQUE,
		logged_out  BOOLEAN NOT NULL,
		online      BOOLEAN NOT NULL,
		gc_timeout  BIGINT NOT NULL,
		gc_deadline BIGINT NOT NULL
	);
	CREATE TABLE events (
		seq     BIGINT PRIMARY KEY,
		time    BIGINT NOT NULL,
		type    TEXT NOT NULL,
		node_id BIGINT NOT NULL,
		name    TEXT NOT NULL,
		reason  TEXT NOT NULL,
		detail  TEXT NOT NULL
	);
	CREATE INDEX events_time ON events (time);`,
	// 2: the change log of replicas (docs/replicas.md): one row per write
	// transaction, keyed by the first map version it takes.
	`CREATE TABLE changes (
		first    BIGINT PRIMARY KEY,
		versions BIGINT NOT NULL CHECK (versions >= 1),
		ops      JSONB NOT NULL
	);`,
	// 3: the replicas and their heartbeats, on the database's clock.
	`CREATE TABLE replicas (
		id        TEXT PRIMARY KEY,
		url       TEXT NOT NULL,
		started   TIMESTAMPTZ NOT NULL,
		heartbeat TIMESTAMPTZ NOT NULL
	);`,
	// 4: the replica holding a node's map stream ('': none).
	`ALTER TABLE nodes ADD COLUMN home TEXT NOT NULL DEFAULT '';`,
	// 5: ipv6 may be NULL: a node registered with no_ipv6 has none (SQLite's
	// migration 4).
	`ALTER TABLE nodes ALTER COLUMN ipv6 DROP NOT NULL;`,
}
