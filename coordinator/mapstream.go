package coordinator

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/meshapi"
)

// stream is one live GET /v1/map. The server closes it when the node is
// deleted or logged out, or a newer stream replaces it.
type stream struct {
	done chan struct{}
	once sync.Once
}

func newStream() *stream { return &stream{done: make(chan struct{})} }

func (st *stream) close() { st.once.Do(func() { close(st.done) }) }

// fullMap is a consistent snapshot for one node: the version it is at,
// the node itself and its peers' encodings (immutable, shared with the
// cache), taken under the lock and written after it is released.
type fullMap struct {
	version uint64
	self    meshapi.Node
	peers   [][]byte
	vis     *visibility // the policy in force at version
	class   classID
}

// snapshotLocked takes n's full map at the current version.
func (s *Server) snapshotLocked(n *node) fullMap {
	vis, class := s.acl.vis, s.classLocked(n)
	fm := fullMap{version: s.deltas.Last(), self: n.view(), peers: make([][]byte, 0, len(s.live)), vis: vis, class: class}
	for _, p := range s.live {
		if p == n || p.LoggedOut || !vis.sees(class, s.classLocked(p)) {
			continue
		}
		fm.peers = append(fm.peers, p.encodedPeer())
	}
	return fm
}

// writeFull writes a full map as one line: the header fields are encoded
// normally and the cached peer encodings are spliced in as "peers", so a
// 10 000-peer map costs copies, not 10 000 encodings.
func (s *Server) writeFull(w *streamWriter, fm *fullMap) error {
	head, err := json.Marshal(meshapi.MapMessage{
		Type: meshapi.MsgFull, Version: fm.version, Epoch: s.epoch, Domain: s.cfg.BaseDomain,
		Prefixes: s.pool.Prefixes(), Self: &fm.self, KeepaliveInterval: meshapi.Duration(s.cfg.KeepaliveInterval),
		Policy: fm.vis.nodePolicy(fm.class),
	})
	if err != nil {
		return err
	}
	if len(fm.peers) == 0 {
		return w.add(append(head, '\n'))
	}
	// head without its closing brace, then the peers; each cached peer ends
	// with a comma, which the last one must not have.
	parts := make([][]byte, 0, len(fm.peers)+3)
	parts = append(parts, head[:len(head)-1], []byte(`,"peers":[`))
	last := len(fm.peers) - 1
	parts = append(parts, fm.peers[:last]...)
	parts = append(parts, fm.peers[last][:len(fm.peers[last])-1], []byte("]}\n"))
	return w.addParts(parts)
}

func (s *Server) writeKeepalive(w *streamWriter, version uint64) error {
	return w.add(encodeLine(&meshapi.MapMessage{Type: meshapi.MsgKeepalive, Version: version, Epoch: s.epoch}))
}

// serveMap streams n's map: a full map (or, on a resume the log can still
// serve, just the missed deltas), then every delta as it happens, and a
// keepalive when the stream has been idle for a keepalive interval.
func (s *Server) serveMap(w http.ResponseWriter, r *http.Request, n *node) {
	q := r.URL.Query()
	var since uint64
	resume := false
	if v := q.Get(meshapi.QuerySince); v != "" {
		var err error
		if since, err = strconv.ParseUint(v, 10, 64); err != nil {
			writeError(w, badRequest("since=%q: want the version (a non-negative integer) of the last map message applied", v))
			return
		}
		// A version from another epoch means nothing here: start over.
		epoch := q.Get(meshapi.QueryEpoch)
		resume = epoch == "" || epoch == s.epoch
	}

	st := newStream()
	s.mu.Lock()
	if e := s.refuseLocked(); e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	if e := s.goneLocked(n); e != nil {
		s.mu.Unlock()
		writeError(w, e)
		return
	}
	s.attachLocked(n, st, s.clock.Now())
	var fm *fullMap
	if resume {
		if _, _, ok := s.deltas.Read(since, make([]deltalog.Entry, 0, 1), 0); !ok {
			resume = false
		}
	}
	var sv streamView
	if !resume {
		snap := s.snapshotLocked(n)
		fm = &snap
		since = snap.version
		sv = streamView{vis: snap.vis, class: snap.class, self: n}
	} else {
		sv = streamView{vis: s.visAtLocked(since), class: s.classLocked(n), self: n}
	}
	s.mu.Unlock()
	s.metrics.streamOpened(fm != nil)
	defer func() {
		s.mu.Lock()
		s.detachLocked(n, st, s.clock.Now())
		s.mu.Unlock()
		s.metrics.streamClosed()
	}()

	sw, err := startStream(w, r, meshapi.ContentTypeStream, s.cfg.WriteTimeout)
	if err != nil {
		return
	}
	defer sw.close()
	flush := sw.send
	if fm != nil {
		if s.writeFull(sw, fm) != nil {
			return
		}
		fm = nil
	} else if s.writeKeepalive(sw, since) != nil {
		// A resumed stream starts with a keepalive carrying the client's
		// version and the epoch, so the client knows the resume worked.
		return
	}
	if flush() != nil {
		return
	}

	self := uint64(n.ID)
	shard := int(self % uint64(s.deltas.Shards()))
	cursor := since
	buf := make([]deltalog.Entry, 0, 32)
	ticker := time.NewTicker(s.cfg.KeepaliveInterval)
	defer ticker.Stop()
	wrote := true
	for {
		// Take everything available, then send it as one batch.
		var wait <-chan struct{}
		added, behind := false, false
		for {
			entries, w, ok := s.deltas.Read(cursor, buf[:0], shard)
			wait = w
			if !ok {
				behind = true
				break
			}
			if len(entries) == 0 {
				break
			}
			for i := range entries {
				e := &entries[i]
				line, ok := sv.line(e, self)
				if !ok {
					behind = true
					break
				}
				if line != nil {
					sw.add(line)
					added = true
				}
				cursor = e.Version
			}
			clear(entries) // do not pin old lines in buf's backing array
			if behind {
				break
			}
		}
		if behind {
			// Fell out of the log (or cannot have been in it): resynchronise.
			s.mu.Lock()
			if s.nodes[n.ID] != n || n.stream != st {
				s.mu.Unlock()
				return
			}
			snap := s.snapshotLocked(n)
			s.mu.Unlock()
			sv.vis, sv.class = snap.vis, snap.class
			s.metrics.fullResync.Inc()
			if s.writeFull(sw, &snap) != nil || flush() != nil {
				return
			}
			cursor, wrote = snap.version, true
			continue
		}
		if sv.withheld > 0 {
			s.policyMetrics.withheld.Add(float64(sv.withheld))
			sv.withheld = 0
		}
		if added {
			if flush() != nil {
				return
			}
			wrote = true
		}
		select {
		case <-wait:
		case <-ticker.C:
			if !wrote {
				if s.writeKeepalive(sw, cursor) != nil || flush() != nil {
					return
				}
			}
			wrote = false
		case <-st.done:
			return
		case <-sw.clientGone():
			return
		case <-r.Context().Done():
			return
		}
	}
}

// streamView is what a stream needs to know to filter the map log for its
// node: the policy in force at its cursor and the node's tag class.
type streamView struct {
	vis      *visibility
	class    classID
	self     *node
	withheld int // lines not sent because of the policy, since last counted
}

// line returns what the stream writes for e (nil: nothing), and moves the
// view past a policy change. ok is false when the stream must start over
// with a full map.
func (sv *streamView) line(e *deltalog.Entry, self uint64) (line []byte, ok bool) {
	if pc, isPolicy := e.Payload.(*policyChange); isPolicy {
		line = pc.lineFor(sv.class, sv.self)
		if line == nil {
			return nil, false
		}
		sv.vis = pc.vis
		return line, true
	}
	if e.Subject == self {
		return e.Self, true // nil: the node skips news about itself
	}
	if e.Audience != 0 && !sv.vis.sees(sv.class, classID(e.Audience)) {
		sv.withheld++
		return nil, true
	}
	return e.Data, true
}
