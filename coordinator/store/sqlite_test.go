package store

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The behaviour every store shares is tested by the conformance suite
// (storetest, run in conformance_test.go); these are SQLite's own.

func TestSQLiteSchemaVersionAfterReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coord.db")
	for range 2 {
		s, err := OpenSQLite(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.SchemaVersion(ctx); err != nil || v != len(migrations) {
			t.Fatalf("schema version %d, %v; want %d", v, err, len(migrations))
		}
		s.Close()
	}
}

func TestBadPath(t *testing.T) {
	for _, p := range []string{"", "a?b.db"} {
		if _, err := OpenSQLite(context.Background(), p); err == nil {
			t.Errorf("OpenSQLite(%q) accepted", p)
		}
	}
}

// A database made before nodes could lack IPv6 (schema 3, ipv6 NOT NULL)
// keeps its nodes through migration 4, and then stores nodes without one.
func TestSQLiteMigratesIPv6ToNullable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "coord.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	old := testNode(1, "web", "100.64.0.1", "fd01:203:405::6440:1")
	for _, q := range migrations[:3] {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.ExecContext(ctx, `PRAGMA user_version = 3`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO nodes (`+nodeColumns+`) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, nodeArgs(&old)...); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	none := testNode(2, "v4only", "100.64.0.2", "")
	none2 := testNode(3, "v4only-1", "100.64.0.3", "")
	if err := s.Apply(ctx, []Op{PutNode(none), PutNode(none2)}); err != nil {
		t.Fatalf("after the migration, nodes without IPv6: %v", err)
	}
	snap, err := s.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Nodes) != 3 || !reflect.DeepEqual(snap.Nodes[0], old) || !reflect.DeepEqual(snap.Nodes[1], none) {
		t.Fatalf("nodes after the migration: %+v\nwant %+v, %+v, %+v", snap.Nodes, old, none, none2)
	}
	var nulls int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM nodes WHERE ipv6 IS NULL`).Scan(&nulls); err != nil || nulls != 2 {
		t.Fatalf("rows with ipv6 NULL: %d, %v; want 2", nulls, err)
	}
}

// testNode is a node record; v6 "" means none.
func testNode(id uint64, name, v4, v6 string) NodeRecord {
	n := NodeRecord{ID: id, Name: name, Hostname: name, IPv4: netip.MustParseAddr(v4),
		PublicKey: [32]byte{byte(id)}, Endpoints: []netip.AddrPort{}, Tags: []string{},
		Created: time.Unix(1700000000, 0), KeyID: "0123456789abcdef", SecretHash: [32]byte{byte(id), 1}}
	if v6 != "" {
		n.IPv6 = netip.MustParseAddr(v6)
	}
	return n
}
