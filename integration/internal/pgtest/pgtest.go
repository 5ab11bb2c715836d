// Package pgtest runs a real, private PostgreSQL server for a test: Debian's
// postgresql, through scripts/postgres.sh (the one source of truth for how
// it is installed, initialised, started and stopped), in a temp dir with
// its own unix socket and a port on 127.0.0.1.
//
// A Server can be stopped, killed and started again with the same data and
// port, which is how suites test that clients ride out a database restart.
// Each test that needs a clean database asks for one with NewDatabase.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/meshinit/meshinit/integration/internal/harness"
)

// Server is one private PostgreSQL server.
type Server struct {
	// Dir holds the cluster, its socket, its log and its port.
	Dir string
	url string
}

// testOptions trade durability against an OS crash for speed (a test's
// database dies with it). Commits stay synchronous: a killed server (Kill)
// loses nothing it acknowledged, as on a real machine.
const testOptions = "-c fsync=off -c full_page_writes=off -c shared_buffers=32MB"

// Start starts a new server and removes it (data included) when t ends. It
// fails t when PostgreSQL is not installed (scripts/postgres.sh install).
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := script("remove", s.Dir); err != nil {
			t.Errorf("removing PostgreSQL: %v", err)
		}
	})
	return s
}

func start(dir string) (*Server, error) {
	if dir == "" {
		// Short: the socket's path must fit in 107 bytes.
		d, err := os.MkdirTemp("/tmp", "mipg-")
		if err != nil {
			return nil, err
		}
		if _, err := scriptEnv([]string{"POSTGRES_OPTS=" + testOptions}, "start", d); err != nil {
			script("remove", d)
			os.RemoveAll(d)
			return nil, err
		}
		dir = d
	} else if _, err := scriptEnv([]string{"POSTGRES_OPTS=" + testOptions}, "start", dir); err != nil {
		return nil, err
	}
	u, err := script("url", dir)
	if err != nil {
		return nil, err
	}
	return &Server{Dir: dir, url: strings.TrimSpace(u)}, nil
}

// URL is the postgres:// URL of the server's "postgres" database.
func (s *Server) URL() string { return s.url }

// Stop shuts the server down cleanly (its data stays for Resume).
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if _, err := script("stop", s.Dir); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the server as a crash would: immediate shutdown, no checkpoint.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if _, err := script("kill", s.Dir); err != nil {
		t.Fatal(err)
	}
}

// Resume starts a stopped or killed server again, same data, same port.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if _, err := start(s.Dir); err != nil {
		t.Fatal(err)
	}
}

// Restart is Stop then Resume.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Resume(t)
}

// NewDatabase creates an empty database with a fresh name, dropped when t
// ends, and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	if err := s.exec(fmt.Sprintf("CREATE DATABASE %s", name)); err != nil {
		t.Fatalf("creating database: %v", err)
	}
	t.Cleanup(func() {
		// WITH (FORCE) ends sessions a test left open.
		if err := s.exec(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("dropping database %s: %v", name, err)
		}
	})
	return DatabaseURL(s.url, name)
}

// OverSocket returns db, a database URL of s, reaching the server by its
// unix socket (in Dir) instead of 127.0.0.1: for a client in a network
// namespace of its own, which cannot reach the host's loopback but shares
// the host's files.
func (s *Server) OverSocket(t testing.TB, db string) string {
	t.Helper()
	u, err := url.Parse(db)
	if err != nil {
		t.Fatalf("database URL: %v", err)
	}
	port, err := os.ReadFile(filepath.Join(s.Dir, "port"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("host", s.Dir)
	q.Set("port", strings.TrimSpace(string(port)))
	u.Host, u.RawQuery = "", q.Encode()
	return u.String()
}

// DatabaseURL returns base with its database replaced by name.
func DatabaseURL(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // our own URL
	}
	u.Path = "/" + name
	return u.String()
}

func (s *Server) exec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.url)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, sql)
	return err
}

// Installed reports whether a PostgreSQL server is installed.
func Installed() bool {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	return len(found) > 0
}

// ScriptPath is scripts/postgres.sh of this repository.
func ScriptPath() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("pgtest: cannot locate source file")
	}
	// integration/internal/pgtest/pgtest.go -> repo root
	p := filepath.Join(filepath.Dir(file), "..", "..", "..", "scripts", "postgres.sh")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return filepath.Clean(p), nil
}

func script(args ...string) (string, error) { return scriptEnv(nil, args...) }

func scriptEnv(env []string, args ...string) (string, error) {
	p, err := ScriptPath()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", append([]string{p}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("postgres.sh %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// EnvCoordDB chooses the database of the coordinators the suites start
// (integration/internal/coordtest): "postgres" gives each one a fresh
// database on a PostgreSQL server shared by the test process (over its
// unix socket for a coordinator in a network namespace); anything else, a
// SQLite file. scripts/test.sh runs the lifecycle suites once each
// way.
const EnvCoordDB = "MESHINIT_COORD_DB"

// CoordOnPostgres reports whether EnvCoordDB asks for PostgreSQL.
func CoordOnPostgres() bool { return os.Getenv(EnvCoordDB) == "postgres" }

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the server shared by the whole test process, starting it
// on first use. RemoveShared (from TestMain, after m.Run) removes it.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start("")
		if shared.err == nil {
			harness.AtExit(RemoveShared)
		}
	}
	if shared.err != nil {
		t.Fatalf("starting the shared PostgreSQL server: %v", shared.err)
	}
	return shared.srv
}

// RemoveShared stops and removes the shared server, if one was started
// (harness.Main calls it).
func RemoveShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv != nil {
		script("remove", shared.srv.Dir)
		shared.srv = nil
	}
}
