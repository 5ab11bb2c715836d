package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// keepLink keeps the dialed link to pl's relay up until ctx ends,
// reconnecting with backoff. While the link is down, nodes on that relay
// are unknown here: packets for them are held and dropped like those for
// any node that is not connected.
func (s *Server) keepLink(ctx context.Context, pl *peerLink) {
	defer s.mesh.wg.Done()
	backoff, failures := linkBackoffMin, 0
	for ctx.Err() == nil {
		c, fr, err := s.dialLink(ctx, pl.peer)
		if err != nil && ctx.Err() != nil {
			return // stopped while dialing: not a failure
		}
		if err != nil {
			failures++
			s.metrics.linkFails.Inc()
			if failures == 1 || failures%20 == 0 {
				s.log.Warn("replica link failed; retrying", "replica", pl.peer.ID, "url", pl.peer.URL, "err", err, "attempts", failures)
			}
		} else {
			failures = 0
			began := time.Now()
			s.runDialed(ctx, pl, c, fr)
			if time.Since(began) > 30*time.Second {
				backoff = linkBackoffMin
			}
		}
		t := time.NewTimer(backoff + rand.N(backoff/2))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
		backoff = min(2*backoff, linkBackoffMax)
	}
}

// runDialed serves one dialed link until it ends or ctx does.
func (s *Server) runDialed(ctx context.Context, pl *peerLink, c *client, fr *relayproto.Reader) {
	if !s.linkUp(pl, c) {
		c.close("no longer wanted")
		return
	}
	s.log.Info("replica link up", "replica", pl.peer.ID, "url", pl.peer.URL)
	stop := context.AfterFunc(ctx, func() { c.close("replica gone from the list or relay shutting down") })
	defer stop()
	go c.writeLoop()
	err := c.dialedReadLoop(fr)
	c.close(closeReason(err))
	s.linkDown(pl, c)
	if ctx.Err() == nil {
		s.log.Warn("replica link lost; reconnecting", "replica", pl.peer.ID, "reason", closeReason(err))
	}
}

// dialedReadLoop takes the presence the linked relay announces.
func (c *client) dialedReadLoop(fr *relayproto.Reader) error {
	return c.readFrames(fr, func(f relayproto.Frame) error {
		if f.Type != relayproto.FramePresence {
			return fmt.Errorf("%w: a replica's relay may not send %v frames on a link", relayproto.ErrFrame, f.Type)
		}
		c.s.applyPresence(c, f.Op, f.Keys)
		return nil
	})
}

// dialLink connects to p's relay as a replica and runs the handshake:
// the relay's proof is checked before ours is sent.
func (s *Server) dialLink(ctx context.Context, p Peer) (*client, *relayproto.Reader, error) {
	u, err := url.Parse(strings.TrimSuffix(p.URL, "/") + meshapi.PathRelay)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("replica %s has URL %q: want http(s)://host[:port]", p.ID, p.URL)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	ctx, cancel := context.WithTimeout(ctx, linkAuthTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	nc.SetDeadline(deadline)
	if u.Scheme == "https" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if s.cfg.Mesh.TLS != nil {
			cfg = s.cfg.Mesh.TLS.Clone()
		}
		cfg.ServerName, cfg.NextProtos = u.Hostname(), []string{"http/1.1"}
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, nil, err
		}
		nc = tc
	}
	fr, err := s.linkHandshake(nc, u, p)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	if !stop() {
		nc.Close()
		return nil, nil, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	return s.newLink(p.ID, nc), fr, nil
}

// linkHandshake sends the upgrade, checks the relay's answer and proof,
// and sends ours.
func (s *Server) linkHandshake(nc net.Conn, u *url.URL, p Peer) (*relayproto.Reader, error) {
	mine := relayproto.NewNonce()
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", relayproto.Protocol)
	req.Header.Set(relayproto.HeaderReplica, s.cfg.Mesh.ID)
	req.Header.Set(relayproto.HeaderNonce, mine.String())
	if err := req.Write(nc); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(nc, bufferedWriter)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		var eb meshapi.ErrorBody
		json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&eb)
		resp.Body.Close()
		return nil, fmt.Errorf("the relay answered %s: %s", resp.Status, eb.Error.Message)
	}
	if got := resp.Header.Get(relayproto.HeaderReplica); got != p.ID {
		return nil, fmt.Errorf("the relay at %s is replica %q, not %q", p.URL, got, p.ID)
	}
	theirs, err := relayproto.ParseNonce(resp.Header.Get(relayproto.HeaderNonce))
	if err != nil {
		return nil, err
	}
	proof, err := relayproto.DecodeProof(resp.Header.Get(relayproto.HeaderProof))
	if err != nil {
		return nil, err
	}
	key := s.cfg.Mesh.Key
	if !relayproto.ProofEqual(proof, relayproto.LinkProof(key, relayproto.RoleRelay, s.cfg.Mesh.ID, p.ID, mine, theirs)) {
		return nil, errors.New("the relay did not prove it holds the mesh key (do the replicas share one database?)")
	}
	mac := relayproto.LinkProof(key, relayproto.RoleDialer, s.cfg.Mesh.ID, p.ID, mine, theirs)
	if _, err := nc.Write(relayproto.AppendMeshAuth(nil, mac)); err != nil {
		return nil, err
	}
	return relayproto.NewReader(br, bufferedWriter), nil
}
