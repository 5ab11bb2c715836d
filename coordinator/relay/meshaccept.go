package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// serveLink accepts a link from another replica's relay: it answers the
// upgrade with this replica's proof, waits for the dialer's, and then
// announces our nodes over the link and delivers the packets it forwards.
func (s *Server) serveLink(w http.ResponseWriter, r *http.Request) {
	if !s.meshEnabled() {
		writeError(w, http.StatusForbidden, meshapi.ErrForbidden,
			"this relay takes no replica links (it has no mesh key): nodes connect with their node secret and no %s header", relayproto.HeaderReplica)
		return
	}
	dialerID := r.Header.Get(relayproto.HeaderReplica)
	dialerNonce, err := relayproto.ParseNonce(r.Header.Get(relayproto.HeaderNonce))
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, meshapi.ErrInvalidRequest, "replica link: %v", err)
		return
	case relayproto.ValidReplicaID(dialerID) != nil:
		writeError(w, http.StatusBadRequest, meshapi.ErrInvalidRequest, "replica link: %s: %v", relayproto.HeaderReplica, relayproto.ValidReplicaID(dialerID))
		return
	case dialerID == s.cfg.Mesh.ID:
		writeError(w, http.StatusBadRequest, meshapi.ErrInvalidRequest, "replica link: %s is this replica's own id", relayproto.HeaderReplica)
		return
	case r.ProtoMajor != 1 || relayproto.RequestedKind(r.Header) != relayproto.KindRaw:
		writeError(w, http.StatusBadRequest, meshapi.ErrInvalidRequest,
			"replica link: use HTTP/1.1 with \"Connection: Upgrade\" and \"Upgrade: %s\"", relayproto.Protocol)
		return
	}
	nc, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeError(w, http.StatusInternalServerError, meshapi.ErrInternal, "cannot take over the connection: %v", err)
		return
	}
	relayNonce := relayproto.NewNonce()
	key := s.cfg.Mesh.Key
	proof := relayproto.LinkProof(key, relayproto.RoleRelay, dialerID, s.cfg.Mesh.ID, dialerNonce, relayNonce)
	head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + relayproto.Protocol + "\r\n" +
		relayproto.HeaderReplica + ": " + s.cfg.Mesh.ID + "\r\n" +
		relayproto.HeaderNonce + ": " + relayNonce.String() + "\r\n" +
		relayproto.HeaderProof + ": " + relayproto.EncodeProof(proof) + "\r\n\r\n"
	nc.SetDeadline(time.Now().Add(linkAuthTimeout))
	if _, err := io.WriteString(nc, head); err != nil {
		nc.Close()
		return
	}
	fr := relayproto.NewReader(brw.Reader, bufferedWriter)
	f, err := fr.Next()
	if err == nil && (f.Type != relayproto.FrameMeshAuth ||
		!relayproto.ProofEqual(f.Proof, relayproto.LinkProof(key, relayproto.RoleDialer, dialerID, s.cfg.Mesh.ID, dialerNonce, relayNonce))) {
		err = errors.New("the dialer did not prove it holds the mesh key")
	}
	if err != nil {
		s.log.Warn("replica link refused", "replica", dialerID, "remote", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return
	}
	nc.SetDeadline(time.Time{})
	c := s.newLink(dialerID, nc)
	if !s.subscribe(c) {
		nc.Close()
		return
	}
	s.log.Info("replica link accepted", "replica", dialerID, "remote", nc.RemoteAddr().String())
	go c.writeLoop()
	err = c.acceptedReadLoop(fr)
	s.unsubscribe(c)
	if c.close(closeReason(err)) {
		s.log.Info("replica link closed", "replica", dialerID, "side", linkAccepted, "reason", closeReason(err))
	}
}

// newLink wraps a link's connection; its data queue is a link's.
func (s *Server) newLink(peer string, conn net.Conn) *client {
	c := newClient(s, meshapi.Key{}, conn)
	c.peer, c.fullDrop = peer, dropLinkQueueFull
	c.data = newFrameRing(linkQueueFactor * s.cfg.QueueLen)
	return c
}

// acceptedReadLoop delivers the forwards a dialer sends to nodes
// connected here. A forward for a node that is not here is dropped: never
// sent on, so no packet crosses two links.
func (c *client) acceptedReadLoop(fr *relayproto.Reader) error {
	return c.readFrames(fr, func(f relayproto.Frame) error {
		if f.Type != relayproto.FrameForward {
			return fmt.Errorf("%w: a dialing replica may not send %v frames", relayproto.ErrFrame, f.Type)
		}
		c.s.metrics.forwarded(forwardReceived, len(f.Packet), 1)
		d := c.s.lookup(f.Key)
		if d == nil {
			c.s.metrics.drop(dropForwardNotHere, 1)
			return nil
		}
		d.enqueue(relayproto.AppendPacket(getBuf(relayproto.HeaderLen+relayproto.KeyLen+len(f.Packet)), relayproto.FrameRecv, f.Src, f.Packet), false)
		return nil
	})
}

func closeReason(err error) string {
	if err == nil || err == io.EOF {
		return "closed"
	}
	return err.Error()
}
