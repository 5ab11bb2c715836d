package relay

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// Config configures a Server. Authenticate is required.
type Config struct {
	// Authenticate returns the public key of the node whose secret the
	// request carries, or the error to answer with.
	Authenticate func(*http.Request) (meshapi.Key, *meshapi.Error)
	// Active reports whether key k still belongs to a node in the mesh. It
	// is asked once a connection is registered, so that a node deleted
	// between Authenticate and registration is not left connected. Nil
	// means always.
	Active func(k meshapi.Key) bool
	// STUNPort, when not zero, is announced to clients (the coordinator's
	// STUN responder on the same host).
	STUNPort int
	// QueueLen is each destination's queue in packets; 0 means
	// DefaultQueueLen.
	QueueLen int
	// WriteTimeout bounds one write to a client; a client that takes
	// longer is disconnected. 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// KeepAlive is how often an idle connection gets a keepalive frame; 0
	// means DefaultKeepAlive.
	KeepAlive time.Duration
	// Mesh, when set, links this relay with the other replicas' relays
	// (mesh.go), so that a packet reaches a node connected to any of
	// them. Nil: a relay on its own.
	Mesh *MeshConfig
	// Log receives one line per event; nil discards.
	Log *slog.Logger
}

const (
	// DefaultQueueLen: at 1.4 KB per packet about 1.4 MB per destination,
	// enough to absorb a burst at full speed on a fast link without
	// growing into a second buffer behind the kernel's.
	DefaultQueueLen = 1024
	// DefaultWriteTimeout is how long a receiver may stall one write.
	DefaultWriteTimeout = 5 * time.Second
	// DefaultKeepAlive keeps proxies and NATs on the path from timing out
	// an idle connection.
	DefaultKeepAlive = 30 * time.Second
	// readTimeout: a client pings at least every 25 s; silence for this
	// long means it is gone.
	readTimeout = 90 * time.Second
	// ctlQueueLen bounds control frames (pongs, peer-gone) per client.
	ctlQueueLen = 64
)

// Server relays packets between connected nodes. Serve it at
// meshapi.PathRelay; it is safe for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	mu      sync.RWMutex
	clients map[meshapi.Key]*client
	held    holds // packets for keys not connected yet
	closed  bool
	mesh    meshState // links with other replicas' relays
}

// New returns a relay server.
func New(cfg Config) *Server {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "relay"), metrics: newMetrics(), clients: map[meshapi.Key]*client{},
		held: holds{byKey: map[meshapi.Key]*heldPackets{}}}
	s.startMesh()
	return s
}

// Metrics returns the server's Prometheus collector.
func (s *Server) Metrics() *Metrics { return s.metrics }

// ServeHTTP accepts a relay connection: it authenticates the node, answers
// 101 Switching Protocols (HTTP/1.1 upgrade or WebSocket) and relays until
// the connection ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, meshapi.ErrInvalidRequest, "method %s not allowed on %s: use GET with an upgrade", r.Method, r.URL.Path)
		return
	}
	if r.Header.Get(relayproto.HeaderReplica) != "" {
		s.serveLink(w, r)
		return
	}
	key, e := s.cfg.Authenticate(r)
	if e != nil {
		writeError(w, e.Status, e.Code, "%s", e.Message)
		return
	}
	kind := relayproto.RequestedKind(r.Header)
	wsKey := r.Header.Get("Sec-WebSocket-Key")
	switch {
	case r.ProtoMajor != 1:
		writeError(w, http.StatusHTTPVersionNotSupported, meshapi.ErrInvalidRequest,
			"the relay needs HTTP/1.1 (got %s): connect without HTTP/2, with \"Connection: Upgrade\"", r.Proto)
		return
	case kind == "":
		w.Header().Set("Upgrade", relayproto.Protocol+", websocket")
		writeError(w, http.StatusUpgradeRequired, meshapi.ErrInvalidRequest,
			"the relay is reached by an upgrade: send \"Connection: Upgrade\" with \"Upgrade: %s\" or a WebSocket handshake", relayproto.Protocol)
		return
	case kind == relayproto.KindWebSocket && (wsKey == "" || r.Header.Get("Sec-WebSocket-Version") != "13"):
		writeError(w, http.StatusBadRequest, meshapi.ErrInvalidRequest,
			"WebSocket handshake needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13")
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, meshapi.ErrInternal, "cannot take over the connection: %v", err)
		return
	}
	nc.SetDeadline(time.Time{}) // the HTTP server's header deadline no longer applies
	var head []byte
	head = append(head, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"...)
	if kind == relayproto.KindWebSocket {
		head = append(head, "Upgrade: websocket\r\nSec-WebSocket-Accept: "+relayproto.WebSocketAccept(wsKey)+"\r\n"...)
		head = append(head, "Sec-WebSocket-Protocol: "+relayproto.Protocol+"\r\n"...)
	} else {
		head = append(head, "Upgrade: "+relayproto.Protocol+"\r\n"...)
	}
	if s.cfg.STUNPort != 0 {
		head = append(head, relayproto.HeaderSTUNPort+": "+strconv.Itoa(s.cfg.STUNPort)+"\r\n"...)
	}
	head = append(head, "\r\n"...)
	nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	if _, err := nc.Write(head); err != nil {
		nc.Close()
		return
	}
	var conn net.Conn = nc
	var src io.Reader = brw.Reader // may hold frames sent right behind the request
	if kind == relayproto.KindWebSocket {
		ws := relayproto.NewWSConn(nc, brw.Reader, false)
		conn, src = ws, ws
	}
	s.run(key, conn, src, kind)
}

// run registers the connection and relays until it ends.
func (s *Server) run(key meshapi.Key, conn net.Conn, src io.Reader, kind string) {
	c := newClient(s, key, conn)
	if !s.register(c) {
		conn.Close()
		return
	}
	if s.cfg.Active != nil && !s.cfg.Active(key) {
		s.unregister(c, "node no longer in the mesh")
		return
	}
	s.log.Info("relay client connected", "key", key.String(), "remote", conn.RemoteAddr().String(), "kind", kind)
	go c.writeLoop()
	err := c.readLoop(src)
	reason := "closed"
	if err != nil && err != io.EOF {
		reason = err.Error()
	}
	s.unregister(c, reason)
}

// register makes c the connection of its key, replacing an older one.
func (s *Server) register(c *client) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.clients[c.key]
	s.clients[c.key] = c
	n := len(s.clients)
	early := s.held.take(c.key, time.Now())
	s.announceLocked(c.key, true)
	s.mu.Unlock()
	for _, f := range early {
		c.enqueue(f, false)
	}
	s.metrics.clients.Set(float64(n))
	if old != nil {
		old.close("replaced by a newer connection of the same node")
	}
	return true
}

func (s *Server) unregister(c *client, reason string) {
	s.mu.Lock()
	if s.clients[c.key] == c {
		delete(s.clients, c.key)
		s.announceLocked(c.key, false)
	}
	n := len(s.clients)
	s.mu.Unlock()
	s.metrics.clients.Set(float64(n))
	if c.close(reason) {
		s.log.Info("relay client disconnected", "key", c.key.String(), "reason", reason)
	}
}

func (s *Server) lookup(k meshapi.Key) *client {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.clients[k]
}

// route finds where a packet for k goes: its connection here, else (link
// not nil) the link to the replica whose relay has it.
func (s *Server) route(k meshapi.Key) (local, link *client) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if c := s.clients[k]; c != nil {
		return c, nil
	}
	return nil, s.mesh.routes[k]
}

// Disconnect closes the relay connection of key k, if any: the
// coordinator calls it when the node is deleted or logged out.
func (s *Server) Disconnect(k meshapi.Key) {
	if c := s.lookup(k); c != nil {
		s.unregister(c, "node deleted or logged out")
	}
}

// Connected reports whether key k has a relay connection.
func (s *Server) Connected(k meshapi.Key) bool { return s.lookup(k) != nil }

// Close disconnects every client and replica link; later connections are
// refused.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	all := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		s.unregister(c, "relay shutting down")
	}
	s.stopMesh()
	return nil
}

func writeError(w http.ResponseWriter, status int, code meshapi.ErrorCode, format string, args ...any) {
	b, _ := json.Marshal(meshapi.ErrorBody{Error: meshapi.Error{Code: code, Message: fmt.Sprintf(format, args...)}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// bufferedWriter is the writer's buffer size: many frames go out per
// system call while a queue is busy.
const bufferedWriter = 256 << 10
