package ctlsock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Paths served on the control socket.
const (
	PathStatus = "/v1/status"
	PathLogout = "/v1/logout"
)

// DefaultSocket is where the control socket lives unless
// MESH_CONTROL_SOCKET says otherwise.
const DefaultSocket = "/run/meshinit.sock"

// DefaultLogoutTimeout bounds a logout asked for over the socket when
// Listen is given no limit; meshinit passes MESH_LOGOUT_TIMEOUT.
const DefaultLogoutTimeout = 3 * time.Second

// Server serves the control socket or the health endpoints until Close.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	path string // socket path to remove on Close; "" for TCP
	done chan struct{}
}

// Listen creates the control socket at path (mode 0600, parent directory
// created if missing) and serves b on it. A stale socket left by a dead
// process is replaced; a live one is an error, so two meshinits never
// fight over one path. A logout asked for over the socket gets
// logoutTimeout (MESH_LOGOUT_TIMEOUT; 0 means DefaultLogoutTimeout), as the
// stop path's does.
func Listen(path string, b Backend, log *slog.Logger, logoutTimeout time.Duration) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if logoutTimeout <= 0 {
		logoutTimeout = DefaultLogoutTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: creating its directory: %w", path, err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// Only root (the container's user) may ask for a logout.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, b.Status())
	})
	mux.HandleFunc("POST "+PathLogout, func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), logoutTimeout)
		defer cancel()
		res, err := b.Logout(ctx)
		if err != nil {
			log.Warn("logout over the control socket failed", "err", err)
			writeJSON(w, http.StatusBadGateway, errorBody{Error: err.Error()})
			return
		}
		log.Info("logged out over the control socket", "deleted", res.Deleted, "already", res.Already)
		writeJSON(w, http.StatusOK, res)
	})
	return serve(ln, mux, path), nil
}

// ListenHealth serves /healthz (200 while the process runs) and /readyz
// (200 once the node is up, 503 with the reason before and after) on a
// TCP address such as 127.0.0.1:9090.
func ListenHealth(addr string, b Backend) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("health address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := b.Ready(); !ok {
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return serve(ln, mux, ""), nil
}

func serve(ln net.Listener, h http.Handler, path string) *Server {
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		ln:   ln,
		path: path,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s
}

// Addr is the address served on (the socket path, or host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving and removes the socket file.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	if s.path != "" {
		os.Remove(s.path)
	}
	return err
}

// removeStale removes a socket file nobody listens on any more.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: a file that is not a socket is in the way; remove it or set MESH_CONTROL_SOCKET", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket %s: another meshinit is serving it; set MESH_CONTROL_SOCKET to a free path", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control socket %s: removing the stale socket: %w", path, err)
	}
	return nil
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
