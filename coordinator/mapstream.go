package coordinator

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/deltalog"
	"github.com/meshinit/meshinit/coordinator/maps"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/presence"
	"github.com/meshinit/meshinit/meshapi"
)

// serveMap streams node id's map: a full map (or, on a resume the map log
// can still serve, just the missed lines), then every line as it happens,
// and a keepalive when the stream has been idle for a keepalive interval.
// Holding the stream is being online (presence; the mesh records it).
func (a nodeAPI) serveMap(w http.ResponseWriter, r *http.Request, id meshapi.NodeID) {
	s := a.s
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

	st, e := s.connect(r.Context(), id)
	if e != nil {
		writeError(w, e)
		return
	}
	defer s.disconnect(id, st)
	var fm *maps.Full
	var view maps.View
	if resume && s.rep != nil && since > s.maps.Ring().Last() {
		// Resumed from a replica that is ahead of this one: catch up first,
		// so the stream continues instead of going back to a full map.
		s.rep.catchUp(r.Context())
	}
	if resume {
		view, resume = s.maps.Resume(id, since)
	}
	if !resume {
		full, v, ok := s.maps.Snapshot(id)
		if !ok {
			writeError(w, errorf(http.StatusUnauthorized, meshapi.ErrUnauthorized, "node %d left meanwhile: register again", id))
			return
		}
		fm, view, since = &full, v, full.Version
	}
	s.metrics.streamOpened(fm != nil)
	defer s.metrics.streamClosed()

	sw, err := startStream(w, r, meshapi.ContentTypeStream, s.cfg.WriteTimeout)
	if err != nil {
		return
	}
	defer sw.close()
	if fm != nil {
		if a.writeFull(sw, fm) != nil {
			return
		}
	} else if sw.add(s.maps.KeepaliveLine(since)) != nil {
		// A resumed stream starts with a keepalive carrying the client's
		// version and the epoch, so the client knows the resume worked.
		return
	}
	if sw.send() != nil {
		return
	}
	a.copyLines(r, sw, id, st, since, &view)
}

// connect makes st id's live stream and records the node online. A
// replica streams only once that is committed: the node is homed here for
// every replica, and its full map is the database's.
func (s *Server) connect(ctx context.Context, id meshapi.NodeID) (*presence.Stream, *apiError) {
	var st *presence.Stream
	b, e := s.change(func(m *mesh.Mesh, now time.Time) (mesh.Change, *apiError) {
		n, e := s.activeLocked(id)
		if e != nil {
			return nil, e
		}
		st = s.presence.Attach(id)
		return m.Connect(n, s.self, now), nil
	})
	if e == nil && s.rep != nil {
		if err := b.Wait(ctx, s.cfg.CommitTimeout); err != nil {
			s.disconnect(id, st)
			return nil, unavailable(err)
		}
	}
	return st, e
}

// disconnect is called when st ended: if it was still the node's stream,
// its grace begins.
func (s *Server) disconnect(id meshapi.NodeID, st *presence.Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.presence.Detach(id, st, s.clock.Now())
}

// holds reports whether st is still id's live stream.
func (s *Server) holds(id meshapi.NodeID, st *presence.Stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence.Holds(id, st)
}

func (a nodeAPI) writeFull(sw *streamWriter, fm *maps.Full) error {
	parts, err := a.s.maps.FullLine(fm)
	if err != nil {
		return err
	}
	return sw.addParts(parts)
}

// copyLines sends the map log's lines after cursor until the stream ends:
// everything available as one batch, a full map if the stream fell out of
// the log, a keepalive when idle.
func (a nodeAPI) copyLines(r *http.Request, sw *streamWriter, id meshapi.NodeID, st *presence.Stream, cursor uint64, view *maps.View) {
	s := a.s
	ring := s.maps.Ring()
	shard := int(uint64(id) % uint64(ring.Shards()))
	buf := make([]deltalog.Entry, 0, 32)
	ticker := time.NewTicker(s.cfg.KeepaliveInterval)
	defer ticker.Stop()
	wrote := true
	for {
		var wait <-chan struct{}
		added, behind := false, false
		for {
			entries, w, ok := ring.Read(cursor, buf[:0], shard)
			wait = w
			if !ok {
				behind = true
				break
			}
			if len(entries) == 0 {
				break
			}
			for i := range entries {
				line, ok := view.Line(&entries[i])
				if !ok {
					behind = true
					break
				}
				if line != nil {
					sw.add(line)
					added = true
				}
				cursor = entries[i].Version
			}
			clear(entries) // do not pin old lines in buf's backing array
			if behind {
				break
			}
		}
		if behind {
			// Fell out of the log (or cannot have been in it): resynchronise.
			// A replica whose memory waits for a reload (a write failed
			// after its commands ran) ends the stream instead: the node
			// reconnects, and its connect reloads first.
			if !s.holds(id, st) || (s.rep != nil && s.rep.follower.Dirty()) {
				return
			}
			full, v, ok := s.maps.Snapshot(id)
			if !ok {
				return
			}
			s.metrics.fullResync.Inc()
			if a.writeFull(sw, &full) != nil || sw.send() != nil {
				return
			}
			*view, cursor, wrote = v, full.Version, true
			continue
		}
		if view.Withheld > 0 {
			s.policyMetrics.withheld.Add(float64(view.Withheld))
			view.Withheld = 0
		}
		if added {
			if sw.send() != nil {
				return
			}
			wrote = true
		}
		select {
		case <-wait:
		case <-ticker.C:
			if !wrote {
				if sw.add(s.maps.KeepaliveLine(cursor)) != nil || sw.send() != nil {
					return
				}
			}
			wrote = false
		case <-st.Done():
			return
		case <-sw.clientGone():
			return
		case <-r.Context().Done():
			return
		}
	}
}
