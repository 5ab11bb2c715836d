package coordinator

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/meshinit/meshinit/coordinator/eventlog"
	"github.com/meshinit/meshinit/coordinator/ipam"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
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
	var first []store.Op

	ula, err := netip.ParsePrefix(snap.Meta[metaULA])
	if err != nil {
		if snap.Meta[metaULA] != "" {
			return fmt.Errorf("stored ULA prefix %q: %v", snap.Meta[metaULA], err)
		}
		// A new database: its IPv6 prefix is chosen once and kept forever.
		if ula, err = ipam.NewULA(); err != nil {
			return err
		}
		first = append(first, store.SetMeta(metaULA, ula.String()))
	}
	if s.pool, err = ipam.New(ula); err != nil {
		return err
	}
	if v := snap.Meta[metaLastNodeID]; v != "" {
		if s.lastNodeID, err = strconv.ParseUint(v, 10, 64); err != nil {
			return fmt.Errorf("stored last node id %q: %v", v, err)
		}
	}
	var heartbeat time.Time
	if v, err := strconv.ParseInt(snap.Meta[metaHeartbeat], 10, 64); err == nil {
		heartbeat = time.Unix(0, v)
	}
	for _, k := range snap.Keys {
		s.keys[k.ID] = &key{KeyRecord: k}
	}
	if err := s.restorePolicy(snap.Meta); err != nil {
		return err
	}
	s.eventSeq = snap.LastEventSeq
	s.events = eventlog.New(s.st, s.eventSeq, s.cfg.EventLogSize, s.logEvent)

	if len(first) > 0 {
		if err := s.st.Apply(ctx, first); err != nil {
			return err
		}
	}
	s.mu.Lock()
	err = s.restoreNodesLocked(snap.Nodes, heartbeat, now)
	nodes, keys := len(s.nodes), len(s.keys)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.log.Info("state loaded", "nodes", nodes, "keys", keys, "ula", ula, "epoch", s.epoch)
	return nil
}

// restoreNodesLocked indexes the stored nodes and re-arms their clocks.
func (s *Server) restoreNodesLocked(records []store.NodeRecord, heartbeat, now time.Time) error {
	var expired []*node
	for _, r := range records {
		n := &node{secretHash: r.SecretHash, gcTimeout: r.GCTimeout}
		n.Node = meshapi.Node{
			ID: meshapi.NodeID(r.ID), Name: r.Name, FQDN: s.fqdn(r.Name), Hostname: r.Hostname,
			IPv4: r.IPv4, IPv6: r.IPv6, PublicKey: r.PublicKey, Endpoints: r.Endpoints,
			LastSeen: r.LastSeen, Ephemeral: r.Ephemeral, Tags: r.Tags, Created: r.Created,
			KeyID: r.KeyID, LoggedOut: r.LoggedOut, GCDeadline: r.GCDeadline,
		}
		if err := s.pool.Reserve(r.IPv4, r.IPv6); err != nil {
			return fmt.Errorf("stored node %d (%s): %v", r.ID, r.Name, err)
		}
		if other := s.byName[r.Name]; other != nil {
			return fmt.Errorf("stored nodes %d and %d share the name %q", other.ID, r.ID, r.Name)
		}
		s.indexLocked(n)
		if r.ID > s.lastNodeID {
			s.lastNodeID = r.ID
		}
		switch {
		case n.LoggedOut:
		case r.Online:
			// Online when we went down: give it a grace to come back, and
			// count its GC clock from now, not from before the restart.
			n.Online = true
			if heartbeat.After(n.LastSeen) {
				n.LastSeen = heartbeat
			}
			n.clockFrom = now
			n.GCDeadline = time.Time{}
			s.startGrace(n)
		case n.Ephemeral:
			if n.GCDeadline.IsZero() { // cannot happen with our writes; be safe
				n.GCDeadline = n.Created.Add(s.timeout(n))
			}
			if !n.GCDeadline.After(now) {
				expired = append(expired, n)
			} else {
				s.scheduleGC(n)
			}
		}
	}
	// Nodes whose deadline passed while we were down go now (late, never
	// early); their deletion events say so.
	for _, n := range expired {
		s.deleteLocked(n, meshapi.ReasonGC, "deadline "+n.GCDeadline.UTC().Format(time.RFC3339Nano)+" passed while the coordinator was down", now)
	}
	return nil
}
