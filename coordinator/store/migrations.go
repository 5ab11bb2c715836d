package store

// migrations are applied in order; the database remembers how many it has
// applied in PRAGMA user_version. Append new ones; never edit a released one.
//
// Times are Unix nanoseconds (0: unset), booleans 0/1, lists JSON arrays.
var migrations = []string{
	// 1: the first schema.
	`CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);
	CREATE TABLE auth_keys (
		id                TEXT PRIMARY KEY,
		hash              BLOB NOT NULL,
		description       TEXT NOT NULL,
		ephemeral         INTEGER NOT NULL,
		reusable          INTEGER NOT NULL,
		tags              TEXT NOT NULL,
		created           INTEGER NOT NULL,
		expires           INTEGER NOT NULL,
		revoked           INTEGER NOT NULL,
		ephemeral_timeout INTEGER NOT NULL,
		uses              INTEGER NOT NULL
	);
	CREATE TABLE nodes (
		id          INTEGER PRIMARY KEY,
		name        TEXT NOT NULL UNIQUE,
		hostname    TEXT NOT NULL,
		ipv4        TEXT NOT NULL UNIQUE,
		ipv6        TEXT NOT NULL UNIQUE,
		public_key  BLOB NOT NULL,
		endpoints   TEXT NOT NULL,
		ephemeral   INTEGER NOT NULL,
		tags        TEXT NOT NULL,
		created     INTEGER NOT NULL,
		last_seen   INTEGER NOT NULL,
		key_id      TEXT NOT NULL,
		secret_hash BLOB NOT NULL UNIQUE,
		logged_out  INTEGER NOT NULL,
		online      INTEGER NOT NULL,
		gc_timeout  INTEGER NOT NULL,
		gc_deadline INTEGER NOT NULL
	);
	CREATE TABLE events (
		seq     INTEGER PRIMARY KEY,
		time    INTEGER NOT NULL,
		type    TEXT NOT NULL,
		node_id INTEGER NOT NULL,
		name    TEXT NOT NULL,
		reason  TEXT NOT NULL,
		detail  TEXT NOT NULL
	);`,
	// 2: event retention deletes by age.
	`CREATE INDEX events_time ON events (time);`,
	// 3: the replica holding a node's map stream (PostgreSQL replicas;
	// always empty here), so both stores share their row encoding.
	`ALTER TABLE nodes ADD COLUMN home TEXT NOT NULL DEFAULT '';`,
	// 4: ipv6 may be NULL: a node that cannot carry IPv6 (registered with
	// no_ipv6) has none, and any number of them may exist. SQLite cannot
	// drop a NOT NULL, so the table is rebuilt (it has no other indexes,
	// triggers or foreign keys).
	`CREATE TABLE nodes_new (
		id          INTEGER PRIMARY KEY,
		name        TEXT NOT NULL UNIQUE,
		hostname    TEXT NOT NULL,
		ipv4        TEXT NOT NULL UNIQUE,
		ipv6        TEXT UNIQUE,
		public_key  BLOB NOT NULL,
		endpoints   TEXT NOT NULL,
		ephemeral   INTEGER NOT NULL,
		tags        TEXT NOT NULL,
		created     INTEGER NOT NULL,
		last_seen   INTEGER NOT NULL,
		key_id      TEXT NOT NULL,
		secret_hash BLOB NOT NULL UNIQUE,
		logged_out  INTEGER NOT NULL,
		online      INTEGER NOT NULL,
		gc_timeout  INTEGER NOT NULL,
		gc_deadline INTEGER NOT NULL,
		home        TEXT NOT NULL DEFAULT ''
	);
	INSERT INTO nodes_new (id, name, hostname, ipv4, ipv6, public_key, endpoints, ephemeral, tags, created,
		last_seen, key_id, secret_hash, logged_out, online, gc_timeout, gc_deadline, home)
		SELECT id, name, hostname, ipv4, ipv6, public_key, endpoints, ephemeral, tags, created,
		last_seen, key_id, secret_hash, logged_out, online, gc_timeout, gc_deadline, home FROM nodes;
	DROP TABLE nodes;
	ALTER TABLE nodes_new RENAME TO nodes;`,
}
