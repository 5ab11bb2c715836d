package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/urfave/cli/v2"
)

// DefaultListen is loopback: exposing the coordinator is a decision.
const DefaultListen = "127.0.0.1:8480"

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "run the coordinator",
		Description: `Serves the node API on --listen (plain HTTP/1.1 and h2c, or HTTPS with --tls-cert
and --tls-key) and the admin API on --admin-socket. State lives in one SQLite file (--db),
created on first start, or in a PostgreSQL database (--db postgres://...). When the server listens it logs "msg=listening url=..." and, with
--addr-file, writes its URL to that file (handy with --listen 127.0.0.1:0).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "listen", EnvVars: []string{"MESHCOORD_LISTEN"}, Value: DefaultListen,
				Usage: "TCP address of the node API (port 0: any free port)"},
			&cli.StringFlag{Name: "db", EnvVars: []string{"MESHCOORD_DB"}, Value: "meshcoord.db",
				Usage: "SQLite database file (created on first start), or a postgres:// URL"},
			&cli.BoolFlag{Name: "standby", EnvVars: []string{"MESHCOORD_STANDBY"},
				Usage: "no longer needed (accepted and ignored): every meshcoord on one PostgreSQL --db serves at once"},
			socketFlag(),
			tokenFlag("allow the admin API over TCP for requests with this bearer token"),
			&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"MESHCOORD_TLS_CERT"}, Usage: "PEM certificate: serve HTTPS"},
			&cli.StringFlag{Name: "tls-key", EnvVars: []string{"MESHCOORD_TLS_KEY"}, Usage: "PEM private key of --tls-cert"},
			&cli.StringFlag{Name: "ephemeral-timeout", EnvVars: []string{"MESHCOORD_EPHEMERAL_TIMEOUT"}, Value: "10m",
				Usage: "how long an ephemeral node may stay offline before it is deleted (a duration, or seconds)"},
			&cli.StringFlag{Name: "reconnect-grace", EnvVars: []string{"MESHCOORD_RECONNECT_GRACE"}, Value: "5s",
				Usage: "how long a node whose stream dropped still counts as online"},
			&cli.StringFlag{Name: "keepalive", EnvVars: []string{"MESHCOORD_KEEPALIVE"}, Value: "15s",
				Usage: "keepalive interval of idle map streams"},
			&cli.StringFlag{Name: "event-retention", EnvVars: []string{"MESHCOORD_EVENT_RETENTION"}, Value: "168h",
				Usage: "how long stored events are kept (older ones are deleted; the newest is always kept)"},
			&cli.StringFlag{Name: "base-domain", EnvVars: []string{"MESHCOORD_BASE_DOMAIN"}, Value: coordinator.DefaultBaseDomain,
				Usage: "DNS domain of node names (name.base-domain)"},
			&cli.StringFlag{Name: "addr-file", EnvVars: []string{"MESHCOORD_ADDR_FILE"},
				Usage: "write the server's URL to this file once it listens"},
			&cli.StringFlag{Name: "policy", EnvVars: []string{"MESHCOORD_POLICY"},
				Usage: "access policy file (docs/policy.md): put in force at start and again on SIGHUP"},
			&cli.StringFlag{Name: "log-format", EnvVars: []string{"MESHCOORD_LOG_FORMAT"}, Value: "text", Usage: "text or json"},
			&cli.StringFlag{Name: "log-level", EnvVars: []string{"MESHCOORD_LOG_LEVEL"}, Value: "info", Usage: "debug, info, warn or error"},
		}, relayFlags()...),
		Action: serve,
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(c.App.ErrWriter, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.App.ErrWriter, opts)), nil
	}
	return nil, usageError{fmt.Errorf("--log-format %q: want text or json", c.String("log-format"))}
}

func serve(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("serve takes no arguments, got %q", c.Args().Slice())}
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	cfg := coordinator.Config{BaseDomain: c.String("base-domain"), AdminToken: c.String("admin-token"), Logger: log}
	for name, d := range map[string]*time.Duration{
		"ephemeral-timeout": &cfg.EphemeralTimeout, "reconnect-grace": &cfg.ReconnectGrace, "keepalive": &cfg.KeepaliveInterval,
		"event-retention": &cfg.EventRetention,
	} {
		if *d, err = durationFlag(c, name); err != nil {
			return err
		}
		if *d == 0 {
			return usageError{fmt.Errorf("--%s must be more than zero", name)}
		}
	}
	certFile, keyFile := c.String("tls-cert"), c.String("tls-key")
	if (certFile == "") != (keyFile == "") {
		return usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	var tlsConfig *tls.Config
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("loading the TLS certificate (--tls-cert %s, --tls-key %s; MESHCOORD_TLS_CERT, MESHCOORD_TLS_KEY): %w; give a PEM certificate and its key, or set both empty to serve plain HTTP", certFile, keyFile, err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Listen before loading: a port or socket conflict is reported before
	// anything else happens.
	ln, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.String("listen"), err)
	}
	defer ln.Close()
	adminLn, err := listenAdminSocket(c.String("admin-socket"))
	if err != nil {
		return err
	}
	defer adminLn.Close()

	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // TLS handshake noise and the like
	newServer := func(h http.Handler, tc *tls.Config) *http.Server {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			MaxHeaderBytes: 16 << 10, ErrorLog: errLog, TLSConfig: tc}
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		if tc != nil {
			srv.Protocols.SetHTTP2(true)
		} else {
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		return srv
	}
	// The servers answer from now on: a retryable 503 while the state
	// loads, the coordinator then.
	starting := notServing("starting", "the coordinator is starting; retry")
	api, admin := newSwitchable(starting), newSwitchable(starting)
	apiSrv, adminSrv := newServer(api, tlsConfig), newServer(admin, nil)
	scheme := "http"
	serveErr := make(chan error, 2)
	if tlsConfig != nil {
		scheme = "https"
		go func() { serveErr <- apiSrv.ServeTLS(ln, "", "") }()
	} else {
		go func() { serveErr <- apiSrv.Serve(ln) }()
	}
	go func() { serveErr <- adminSrv.Serve(adminLn) }()
	stopServers := func() {
		apiSrv.Close()
		adminSrv.Close()
		os.Remove(c.String("admin-socket"))
	}
	url := scheme + "://" + ln.Addr().String()
	if c.Bool("standby") {
		log.Warn("--standby is no longer needed: every meshcoord on one PostgreSQL database serves at once (docs/replicas.md)")
	}
	if cfg.ReplicaURL, err = replicaURL(c, scheme, ln.Addr()); err != nil {
		stopServers()
		return err
	}
	st, err := store.Open(ctx, c.String("db"), log)
	if err != nil {
		stopServers()
		return err
	}
	coord, err := coordinator.New(ctx, cfg, st)
	if err != nil {
		st.Close()
		stopServers()
		return err
	}
	if path := c.String("policy"); path != "" {
		if err := loadPolicyFile(coord, path, log); err != nil {
			coord.Close()
			stopServers()
			return err
		}
		stopReload := reloadOnHangup(coord, path, log)
		defer stopReload()
	}
	apiHandler, stopRelay, err := startRelay(c, coord, coord.Handler(), log)
	if err != nil {
		coord.Close()
		stopServers()
		return err
	}
	defer stopRelay()
	api.set(apiHandler)
	admin.set(coord.AdminHandler())

	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && tlsConfig == nil {
		log.Warn("serving plain HTTP on a non-loopback address: node secrets travel in clear; use --tls-cert/--tls-key", "addr", ln.Addr().String())
	}
	if f := c.String("addr-file"); f != "" {
		if err := writeFileAtomic(f, url+"\n"); err != nil {
			log.Error("writing --addr-file", "file", f, "err", err)
		}
	}
	log.Info("listening", "url", url, "admin_socket", c.String("admin-socket"), "db", store.Redacted(c.String("db")),
		"ephemeral_timeout", cfg.EphemeralTimeout, "reconnect_grace", cfg.ReconnectGrace, "admin_over_tcp", cfg.AdminToken != "")

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-serveErr:
		log.Error("server stopped", "err", runErr)
	}
	// Stop accepting, close streams and store the last changes; streams
	// never end by themselves, so Shutdown gets a short bound.
	shutCtx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		stopRelay() // hijacked connections are not the HTTP server's to close
		apiSrv.Shutdown(shutCtx)
		adminSrv.Shutdown(shutCtx)
		close(done)
	}()
	if err := coord.Close(); err != nil {
		log.Error("closing the store", "err", err)
	}
	<-done
	apiSrv.Close()
	adminSrv.Close()
	os.Remove(c.String("admin-socket"))
	if runErr != nil && !errors.Is(runErr, http.ErrServerClosed) {
		return runErr
	}
	return nil
}

// listenAdminSocket creates the admin socket with mode 0600. A stale socket
// file from a dead server is replaced; a live one is an error.
func listenAdminSocket(path string) (net.Listener, error) {
	if path == "" {
		return nil, usageError{errors.New("--admin-socket is empty")}
	}
	if len(path) > 107 {
		return nil, usageError{fmt.Errorf("--admin-socket %q: a unix socket path must be under 108 bytes", path)}
	}
	if _, err := os.Stat(path); err == nil {
		if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
			conn.Close()
			return nil, fmt.Errorf("admin socket %s is in use by another meshcoord: stop it or pass another --admin-socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing stale admin socket %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("admin socket directory: %w", err)
	}
	// The socket must never exist with wider permissions, not even between
	// bind and chmod: bind under a umask that leaves only the owner.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadPolicyFile puts the policy in path in force.
func loadPolicyFile(coord *coordinator.Server, path string, log *slog.Logger) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	if _, err := coord.SetPolicy(doc); err != nil {
		return fmt.Errorf("--policy %s: %w", path, err)
	}
	return nil
}

// reloadOnHangup reloads the policy file on every SIGHUP. A file that is
// unreadable or refused leaves the policy in force and is logged.
func reloadOnHangup(coord *coordinator.Server, path string, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				if err := loadPolicyFile(coord, path, log); err != nil {
					log.Error("SIGHUP: policy not reloaded; the previous one stays in force", "err", err)
				}
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
