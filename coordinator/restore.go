package coordinator

import (
	"context"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/mesh"
	"github.com/meshinit/meshinit/coordinator/presence"
)

// restore loads the stored state into memory and re-arms every clock:
//
//   - a node stored online was online when the coordinator went down: it
//     counts as online for one reconnect grace from now, and its GC clock
//     starts now (it never had a chance to reconnect before);
//   - an offline ephemeral node keeps its stored deadline, and is collected
//     at once if that has passed while the coordinator was down.
func (s *Server) restore(ctx context.Context, now time.Time) error {
	snap, err := s.st.Load(ctx)
	if err != nil {
		return err
	}
	var heartbeat time.Time
	if v, err := strconv.ParseInt(snap.Meta[metaHeartbeat], 10, 64); err == nil {
		heartbeat = time.Unix(0, v)
	}
	s.events = eventlog.New(s.st, snap.LastEventSeq, s.cfg.EventLogSize, s.logEvent)
	cfg := mesh.Config{BaseDomain: s.cfg.BaseDomain, EphemeralTimeout: s.cfg.EphemeralTimeout, ReconnectGrace: s.cfg.ReconnectGrace}

	s.mu.Lock()
	m, rest, err := mesh.Load(cfg, snap, heartbeat, now, fanout{s})
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.mesh = m
	s.maps.SetPrefixes(m.Prefixes())
	s.maps.Live()
	for _, n := range rest.Online {
		s.presence.StartGrace(n.ID, presence.Absence{LastSeen: n.LastSeen, ClockFrom: now})
	}
	// Nodes whose deadline passed while we were down go now (late, never
	// early); their deletion events say so.
	for _, n := range rest.Expired {
		ch, _ := m.Collect(n, "deadline "+n.GCDeadline.UTC().Format(time.RFC3339Nano)+" passed while the coordinator was down", now)
		s.w.Enqueue(ch...)
	}
	nodes, keys := len(m.Nodes()), 0
	m.Keys(func(*mesh.Key) { keys++ })
	s.mu.Unlock()
	if len(rest.First) > 0 {
		if err := s.st.Apply(ctx, rest.First); err != nil {
			return err
		}
	}
	s.log.Info("state loaded", "nodes", nodes, "keys", keys, "prefixes", m.Prefixes(), "epoch", s.epoch)
	return nil
}
