package coordinator

// The indexes of registered nodes, kept together so they never disagree.
// Callers hold s.mu.

// indexLocked adds n to every index.
func (s *Server) indexLocked(n *node) {
	s.nodes[n.ID] = n
	s.byName[n.Name] = n
	s.bySecret[n.secretHash] = n
	if other := s.byPubKey[n.PublicKey]; other == nil || other.LoggedOut {
		s.byPubKey[n.PublicKey] = n
	}
	n.liveIdx = len(s.live)
	s.live = append(s.live, n)
}

// unindexLocked removes n from every index.
func (s *Server) unindexLocked(n *node) {
	delete(s.nodes, n.ID)
	if s.byName[n.Name] == n {
		delete(s.byName, n.Name)
	}
	delete(s.bySecret, n.secretHash)
	if s.byPubKey[n.PublicKey] == n { // a logged-out node's key may have been taken since
		delete(s.byPubKey, n.PublicKey)
	}
	// Swap-remove from the slice that full maps iterate (faster than the map).
	last := s.live[len(s.live)-1]
	s.live[n.liveIdx] = last
	last.liveIdx = n.liveIdx
	s.live[len(s.live)-1] = nil
	s.live = s.live[:len(s.live)-1]
}
