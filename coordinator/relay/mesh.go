package relay

import (
	"context"
	"crypto/tls"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// Relay meshing. With several coordinator replicas, each node connects to
// the relay of the replica it uses, so the two ends of a pair may be on
// different relays. Each relay therefore dials a link to every other
// replica's relay (meshdial.go) and accepts theirs (meshaccept.go):
//
//   - Over the link it accepted, a relay announces its own nodes (presence
//     frames: connected, gone), never nodes it heard of from others.
//   - Over the link it dialed, a relay hears that peer's nodes and sends
//     it forward frames for them.
//
// A packet for a node that is not connected here goes to the link of the
// replica that announced it, one hop. A forward that arrives is delivered
// to a node connected here or dropped: never forwarded again, so a packet
// crosses at most one link and cannot loop. Both sides prove they hold
// the mesh key (relayproto.LinkProof), so a node cannot open a link, and a
// node's own connection may not send link frames.

// MeshConfig links a relay with the other replicas' relays.
type MeshConfig struct {
	// ID is this replica's id (as the others know it).
	ID string
	// Key is the mesh key every replica holds (at least 32 bytes; read
	// from the shared database). It is never logged.
	Key []byte
	// Peers returns the replicas to link with; an entry with this
	// replica's ID is skipped. It is asked at start and every Refresh.
	Peers func(ctx context.Context) ([]Peer, error)
	// Refresh is how often Peers is asked; 0 means DefaultPeerRefresh.
	Refresh time.Duration
	// TLS configures links to https peers; nil means the system's roots.
	TLS *tls.Config
}

// Peer is another replica's relay.
type Peer struct {
	ID  string
	URL string // the replica's base URL; its relay is at /v1/relay
}

const (
	// DefaultPeerRefresh is how often the replica list is read.
	DefaultPeerRefresh = 2 * time.Second
	// MinMeshKey is the shortest mesh key accepted.
	MinMeshKey = 32
	// linkQueueFactor: a link's queue holds this many times a node's,
	// since it carries the packets of every node behind it.
	linkQueueFactor = 4
	// linkBackoffMin and linkBackoffMax bound the wait between attempts
	// to (re)connect a link.
	linkBackoffMin = 200 * time.Millisecond
	linkBackoffMax = 10 * time.Second
	// linkAuthTimeout bounds the handshake of a link.
	linkAuthTimeout = 10 * time.Second
)

// meshState is guarded by Server.mu.
type meshState struct {
	subs   map[*client]struct{}    // accepted links: they hear our presence
	dialed map[string]*peerLink    // by peer id
	routes map[meshapi.Key]*client // a node on a peer → the dialed link to it
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// peerLink keeps one dialed link up.
type peerLink struct {
	peer   Peer
	cancel context.CancelFunc
	conn   *client // the link while it is up (guarded by Server.mu)
}

func (s *Server) meshEnabled() bool { return s.cfg.Mesh != nil && len(s.cfg.Mesh.Key) >= MinMeshKey }

// startMesh starts the loop that follows the replica list.
func (s *Server) startMesh() {
	s.mesh = meshState{subs: map[*client]struct{}{}, dialed: map[string]*peerLink{}, routes: map[meshapi.Key]*client{}}
	if s.cfg.Mesh == nil {
		return
	}
	if !s.meshEnabled() {
		s.log.Error("relay meshing off: the mesh key is shorter than 32 bytes")
		return
	}
	if s.cfg.Mesh.Refresh <= 0 {
		s.cfg.Mesh.Refresh = DefaultPeerRefresh
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.mesh.cancel = cancel
	s.mesh.wg.Add(1)
	go s.followPeers(ctx)
}

// stopMesh ends every link and waits for their goroutines.
func (s *Server) stopMesh() {
	s.mu.Lock()
	cancel := s.mesh.cancel
	var subs []*client
	for c := range s.mesh.subs {
		subs = append(subs, c)
	}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, c := range subs {
		c.close("relay shutting down")
	}
	s.mesh.wg.Wait()
}

// followPeers keeps one dialed link per peer in the replica list.
func (s *Server) followPeers(ctx context.Context) {
	defer s.mesh.wg.Done()
	t := time.NewTicker(s.cfg.Mesh.Refresh)
	defer t.Stop()
	failing := false
	for {
		peers, err := s.cfg.Mesh.Peers(ctx)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			s.log.Warn("relay mesh: cannot read the replica list; keeping the links as they are", "err", err)
			failing = true
		case err == nil:
			failing = false
			s.setPeers(ctx, peers)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// setPeers starts links to new peers and stops those to peers gone from
// the list (or whose URL changed).
func (s *Server) setPeers(ctx context.Context, peers []Peer) {
	want := map[string]Peer{}
	for _, p := range peers {
		if p.ID != s.cfg.Mesh.ID && p.URL != "" {
			want[p.ID] = p
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for id, pl := range s.mesh.dialed {
		if p, ok := want[id]; !ok || p.URL != pl.peer.URL {
			pl.cancel() // its loop closes the link and drops its presence
			delete(s.mesh.dialed, id)
		}
	}
	for id, p := range want {
		if s.mesh.dialed[id] == nil {
			lctx, cancel := context.WithCancel(ctx)
			pl := &peerLink{peer: p, cancel: cancel}
			s.mesh.dialed[id] = pl
			s.mesh.wg.Add(1)
			go s.keepLink(lctx, pl)
		}
	}
}

// announceLocked tells every accepted link that node k is now connected
// here (or gone).
func (s *Server) announceLocked(k meshapi.Key, here bool) {
	for c := range s.mesh.subs {
		c.notePresence(k, here)
	}
}

// notePresence queues a presence change for an accepted link.
func (c *client) notePresence(k meshapi.Key, here bool) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	if c.presence == nil {
		c.presence = map[meshapi.Key]bool{}
	}
	c.presence[k] = here
	c.mu.Unlock()
	c.wakeWriter()
}

// drainPresence appends presence frames for what changed since the last
// call, at most MaxPresenceKeys keys each. c.mu is held.
func (c *client) drainPresence(out [][]byte) [][]byte {
	if len(c.presence) == 0 {
		return out
	}
	var here, gone []meshapi.Key
	for k, h := range c.presence {
		if h {
			here = append(here, k)
		} else {
			gone = append(gone, k)
		}
	}
	clear(c.presence)
	for _, g := range []struct {
		op   byte
		keys []meshapi.Key
	}{{relayproto.PresenceGone, gone}, {relayproto.PresenceHere, here}} {
		for len(g.keys) > 0 {
			n := min(len(g.keys), relayproto.MaxPresenceKeys)
			out = append(out, relayproto.AppendPresence(nil, g.op, g.keys[:n]))
			g.keys = g.keys[n:]
		}
	}
	return out
}

// subscribe makes an authenticated accepted link hear our nodes: all of
// them now, then every change.
func (s *Server) subscribe(c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.mesh.subs[c] = struct{}{}
	c.mu.Lock()
	c.presence = make(map[meshapi.Key]bool, len(s.clients))
	for k := range s.clients {
		c.presence[k] = true
	}
	c.mu.Unlock()
	s.metrics.links.WithLabelValues(linkAccepted).Set(float64(len(s.mesh.subs)))
	c.wakeWriter()
	return true
}

func (s *Server) unsubscribe(c *client) {
	s.mu.Lock()
	delete(s.mesh.subs, c)
	s.metrics.links.WithLabelValues(linkAccepted).Set(float64(len(s.mesh.subs)))
	s.mu.Unlock()
}

// linkUp makes c the dialed link of pl.
func (s *Server) linkUp(pl *peerLink, c *client) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.mesh.dialed[pl.peer.ID] != pl {
		return false
	}
	pl.conn = c
	s.metrics.links.WithLabelValues(linkDialed).Set(float64(s.dialedUpLocked()))
	return true
}

// linkDown forgets c and every node its relay announced.
func (s *Server) linkDown(pl *peerLink, c *client) {
	s.mu.Lock()
	if pl.conn == c {
		pl.conn = nil
	}
	for k := range c.present {
		s.unrouteLocked(k, c)
	}
	c.present = nil
	s.metrics.links.WithLabelValues(linkDialed).Set(float64(s.dialedUpLocked()))
	s.metrics.remote.Set(float64(len(s.mesh.routes)))
	s.mu.Unlock()
}

func (s *Server) dialedUpLocked() int {
	n := 0
	for _, pl := range s.mesh.dialed {
		if pl.conn != nil {
			n++
		}
	}
	return n
}

// applyPresence records what a dialed link's relay announced. Packets held
// for a node that turns up there are forwarded to it.
func (s *Server) applyPresence(c *client, op byte, keys []meshapi.Key) {
	var flush [][]byte
	s.mu.Lock()
	if c.present == nil {
		c.present = map[meshapi.Key]struct{}{}
	}
	now := time.Now()
	for _, k := range keys {
		if op == relayproto.PresenceGone {
			delete(c.present, k)
			s.unrouteLocked(k, c)
			continue
		}
		c.present[k] = struct{}{}
		s.mesh.routes[k] = c // the newest announcement wins
		if s.clients[k] == nil {
			for _, f := range s.held.take(k, now) {
				flush = append(flush, toForward(k, f))
			}
		}
	}
	s.metrics.remote.Set(float64(len(s.mesh.routes)))
	s.mu.Unlock()
	for _, f := range flush {
		c.enqueue(f, false)
	}
}

// unrouteLocked forgets that k is behind link c, falling back to another
// link whose relay also has it (a node moving between replicas is briefly
// on both).
func (s *Server) unrouteLocked(k meshapi.Key, c *client) {
	if s.mesh.routes[k] != c {
		return
	}
	delete(s.mesh.routes, k)
	for _, pl := range s.mesh.dialed {
		if o := pl.conn; o != nil && o != c {
			if _, ok := o.present[k]; ok {
				s.mesh.routes[k] = o
				return
			}
		}
	}
}

// toForward turns a held recv frame (from a node here) into a forward
// frame for dst.
func toForward(dst meshapi.Key, recv []byte) []byte {
	var src meshapi.Key
	copy(src[:], recv[relayproto.HeaderLen:])
	packet := recv[relayproto.HeaderLen+relayproto.KeyLen:]
	f := relayproto.AppendForward(getBuf(relayproto.ForwardLen(len(packet))), dst, src, packet)
	putBuf(recv)
	return f
}

// RemoteReplica returns the id of the replica whose relay announced node
// k, if k is not connected here and a link knows it.
func (s *Server) RemoteReplica(k meshapi.Key) (string, bool) {
	_, link := s.route(k)
	if link == nil {
		return "", false
	}
	return link.peer, true
}

// Links returns the ids of the replicas this relay has a dialed link up
// to, and how many links it has accepted.
func (s *Server) Links() (dialed []string, accepted int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for id, pl := range s.mesh.dialed {
		if pl.conn != nil {
			dialed = append(dialed, id)
		}
	}
	return dialed, len(s.mesh.subs)
}
