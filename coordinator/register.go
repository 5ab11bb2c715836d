package coordinator

import (
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/meshinit/meshinit/coordinator/authkey"
	"github.com/meshinit/meshinit/coordinator/commit"
	"github.com/meshinit/meshinit/coordinator/names"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/meshapi"
)

// Limits on what a node may send.
const (
	maxHostnameBytes = 255
	maxEndpoints     = 16
)

func validateEndpoints(eps []netip.AddrPort) *apiError {
	if len(eps) > maxEndpoints {
		return badRequest("endpoints: %d given, at most %d allowed", len(eps), maxEndpoints)
	}
	for i, ep := range eps {
		if !ep.IsValid() || ep.Port() == 0 || ep.Addr().IsUnspecified() || ep.Addr().Zone() != "" {
			return badRequest("endpoints[%d] %q: want a UDP address ip:port with a non-zero port", i, ep)
		}
	}
	return nil
}

// Results of a registration in the metrics besides error codes: a new node,
// or the answer repeated to a retry.
const (
	registeredNew      = "ok"
	registeredRepeated = "repeated"
)

// register checks the request and the key, then creates the node in one
// critical section. Nothing is changed unless every check passes, so a
// refused registration consumes no key use, name or address. A retry of a
// registration that was made (the same node secret, auth key and public
// key) changes nothing and gets the same node back.
func (s *Server) register(req *meshapi.RegisterRequest) (*meshapi.RegisterResponse, *commit.Batch, string, *apiError) {
	if len(req.Hostname) > maxHostnameBytes || !utf8.ValidString(req.Hostname) {
		return nil, nil, "", badRequest("hostname: want valid UTF-8 of at most %d bytes", maxHostnameBytes)
	}
	if req.PublicKey.IsZero() {
		return nil, nil, "", badRequest("public_key: missing; send the node's WireGuard public key (base64)")
	}
	if e := validateEndpoints(req.Endpoints); e != nil {
		return nil, nil, "", e
	}
	k, err := authkey.Parse(req.AuthKey)
	if err != nil {
		return nil, nil, "", errorf(http.StatusUnauthorized, meshapi.ErrKeyInvalid, "%v", err)
	}
	secret, secretHash := req.Secret, authkey.Hash{}
	if secret == "" {
		secret, secretHash = authkey.NewNodeSecret()
	} else if secretHash, err = authkey.ParseNodeSecret(secret); err != nil {
		return nil, nil, "", badRequest("secret: %v (make it with 32 random bytes: %s<64 lowercase hex digits>)", err, meshapi.NodeSecretPrefix)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.refuseLocked(); e != nil {
		return nil, nil, "", e
	}
	if n := s.bySecret[secretHash]; n != nil {
		resp, b, e := s.repeatLocked(n, k, req)
		return resp, b, registeredRepeated, e
	}
	now := s.clock.Now()
	ak, e := s.checkKeyLocked(k, now)
	if e != nil {
		return nil, nil, "", e
	}
	// The same machine (same WireGuard key, same auth key) back after a
	// crash: its stale registration gives way; a live one keeps its key.
	pubHolder := s.byPubKey[req.PublicKey]
	if pubHolder != nil && (pubHolder.LoggedOut || !s.replaceableLocked(pubHolder, ak, now)) {
		if !pubHolder.LoggedOut {
			return nil, nil, "", errorf(http.StatusConflict, meshapi.ErrConflict,
				"public key already registered to node %d (%s), which is online or was seen within the last %v: every node needs its own WireGuard key",
				pubHolder.ID, pubHolder.Name, s.cfg.ReconnectGrace)
		}
		pubHolder = nil // a logged-out node's key is free
	}
	base := names.Sanitize(req.Hostname)
	name := names.Unique(base, func(l string) bool {
		h := s.byName[l]
		return h != nil && h != pubHolder && !(names.Sanitize(h.Hostname) == base && s.replaceableLocked(h, ak, now))
	})
	nameHolder := s.byName[name]
	if nameHolder == pubHolder {
		nameHolder = nil
	}
	// Check the pool before replacing anyone: a refused registration
	// changes nothing. (A replaced node's addresses are free again.)
	if s.pool.Free() == 0 && pubHolder == nil && nameHolder == nil {
		return nil, nil, "", errorf(http.StatusServiceUnavailable, meshapi.ErrPoolExhausted,
			"no free mesh address: delete unused nodes (meshcoord nodes list)")
	}
	if pubHolder != nil {
		s.deleteLocked(pubHolder, meshapi.ReasonReplaced, "its public key registered again with its auth key", now)
	}
	if nameHolder != nil {
		s.deleteLocked(nameHolder, meshapi.ReasonReplaced, "its name "+name+" taken by a newcomer of the same auth key", now)
	}
	v4, v6, err := s.pool.Allocate()
	if err != nil {
		panic("coordinator: no address although one is free: " + err.Error()) // checked above
	}

	s.lastNodeID++
	n := &node{secretHash: secretHash, clockFrom: now}
	if ak.Ephemeral {
		n.gcTimeout = ak.EphemeralTimeout
	}
	n.Node = meshapi.Node{
		ID: meshapi.NodeID(s.lastNodeID), Name: name, FQDN: s.fqdn(name), Hostname: req.Hostname,
		IPv4: v4, IPv6: v6, PublicKey: req.PublicKey, Endpoints: nonNil(req.Endpoints),
		Ephemeral: ak.Ephemeral, Tags: nonNil(ak.Tags), Created: now, KeyID: ak.ID,
	}
	if n.Ephemeral {
		// The clock starts at registration: a node that never connects is
		// collected too.
		n.GCDeadline = now.Add(s.timeout(n))
	}
	s.indexLocked(n)
	ak.Uses++

	s.w.Enqueue(
		store.PutKey(ak.KeyRecord),
		store.SetMeta(metaLastNodeID, strconv.FormatUint(s.lastNodeID, 10)),
		store.PutNode(n.record()),
	)
	s.emitLocked(meshapi.EventRegistered, n, "", "key "+ak.ID, now)
	s.publishUpsertLocked(n, false)
	s.scheduleGC(n)
	// The answer waits for everything above, the event included (the
	// writer may have taken the first ops into a commit already).
	return s.registeredLocked(n, secret), s.w.Barrier(), registeredNew, nil
}

func (s *Server) registeredLocked(n *node, secret string) *meshapi.RegisterResponse {
	return &meshapi.RegisterResponse{Node: n.view(), Secret: secret, Domain: s.cfg.BaseDomain, Prefixes: s.pool.Prefixes()}
}

// repeatLocked answers a registration whose node secret is n's: a retry of
// the registration that made n (after a timeout, a 5xx, a lost answer or a
// coordinator restart). It must come with n's auth key and public key; then
// it changes nothing (no second node, no second use of the key, whatever
// the key's state now) and gets n as it is, once n is stored.
func (s *Server) repeatLocked(n *node, k authkey.Key, req *meshapi.RegisterRequest) (*meshapi.RegisterResponse, *commit.Batch, *apiError) {
	ak, e := s.findKeyLocked(k)
	if e != nil {
		return nil, nil, e
	}
	if n.KeyID != ak.ID || n.PublicKey != req.PublicKey {
		return nil, nil, errorf(http.StatusConflict, meshapi.ErrConflict,
			"this node secret is node %d's, registered with another auth key or public key: a retry sends the same ones; a new node makes a new secret", n.ID)
	}
	if n.LoggedOut {
		return nil, nil, errorf(http.StatusUnauthorized, meshapi.ErrLoggedOut,
			"node %d (%s), registered with this secret, has logged out: register with a new secret", n.ID, n.Name)
	}
	return s.registeredLocked(n, req.Secret), s.w.Barrier(), nil
}

// findKeyLocked finds the key k names, if its secret matches.
func (s *Server) findKeyLocked(k authkey.Key) (*key, *apiError) {
	ak := s.keys[k.ID]
	if ak == nil || !k.Matches(ak.Hash) {
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyInvalid,
			"auth key %s is not known to this coordinator: create one with \"meshcoord keys create\"", k.ID)
	}
	return ak, nil
}

// checkKeyLocked finds the key and says exactly why it cannot be used.
func (s *Server) checkKeyLocked(k authkey.Key, now time.Time) (*key, *apiError) {
	ak, e := s.findKeyLocked(k)
	if e != nil {
		return nil, e
	}
	switch ak.state(now) {
	case meshapi.KeyRevoked:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyRevoked,
			"auth key %s was revoked at %s: create a new key", ak.ID, ak.Revoked.UTC().Format(time.RFC3339))
	case meshapi.KeyExpired:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyExpired,
			"auth key %s expired at %s: create a new key (or one with a longer --expiry)", ak.ID, ak.Expires.UTC().Format(time.RFC3339))
	case meshapi.KeyUsed:
		return nil, errorf(http.StatusUnauthorized, meshapi.ErrKeyUsed,
			"auth key %s is a one-off key and was already used: create a new key, or a --reusable one", ak.ID)
	}
	return ak, nil
}

// replaceableLocked reports whether holder may give way (its name, its
// public key) to a newcomer that registers with key ak: holder is an
// ephemeral node of the same key, not logged out, and has been absent for
// longer than the reconnect grace. Absent means holding no stream since it
// dropped its last one, or since it registered if it never connected, but
// never since before this coordinator started: a node the coordinator could
// not see while it was down gets one grace from the start to reconnect
// (its reconnect backoff stays below the grace). So a live node, one that
// is in its grace or has just registered, is never replaced.
func (s *Server) replaceableLocked(holder *node, ak *key, now time.Time) bool {
	if !holder.Ephemeral || holder.KeyID != ak.ID || holder.LoggedOut || holder.stream != nil || holder.Online {
		return false
	}
	absentSince := holder.clockFrom
	if absentSince.Before(s.started) {
		absentSince = s.started
	}
	return now.Sub(absentSince) > s.cfg.ReconnectGrace
}
