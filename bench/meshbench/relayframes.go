package main

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// The relay's own cost, without WireGuard at either end: a bare client
// sends packets in windows to another through one relay, or through two
// linked relays, and the receiver answers each window, so no queue ever
// overflows and every packet counts. The two-relay figure against the
// one-relay figure is what the replica link costs.

const (
	framePacket = 1200 // bytes per packet, about a WireGuard data packet
	frameWindow = 768  // packets per window, inside a node's queue (1024)
)

// frameClient is a bare relay connection authenticated by its key.
type frameClient struct {
	key  meshapi.Key
	conn net.Conn
	fr   *relayproto.Reader
}

func dialFrames(base string) (*frameClient, error) {
	var k meshapi.Key
	rand.Read(k[:])
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	tok, _ := k.MarshalText()
	req, _ := http.NewRequest("GET", base+meshapi.PathRelay, nil)
	req.Header.Set("Authorization", "Bearer "+string(tok))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", relayproto.Protocol)
	req.Write(c)
	br := bufio.NewReaderSize(c, 256<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("relay upgrade: %v %v", resp, err)
	}
	return &frameClient{key: k, conn: c, fr: relayproto.NewReader(br, 256<<10)}, nil
}

// frameRate moves size bytes from a client on relay urlA to one on urlB
// and returns MiB/s. ready, when set, is waited for once both are
// connected (linked relays learning of each other's client).
func frameRate(urlA, urlB string, ready func(a, b meshapi.Key) bool, size int64) (float64, error) {
	a, err := dialFrames(urlA)
	if err != nil {
		return 0, err
	}
	defer a.conn.Close()
	b, err := dialFrames(urlB)
	if err != nil {
		return 0, err
	}
	defer b.conn.Close()
	for deadline := time.Now().Add(30 * time.Second); ready != nil && !ready(a.key, b.key); {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the relays never learned of both clients")
		}
		time.Sleep(10 * time.Millisecond)
	}
	window := relayproto.AppendPacket(nil, relayproto.FrameSend, b.key, make([]byte, framePacket))
	for len(window) < frameWindow*(relayproto.HeaderLen+relayproto.KeyLen+framePacket) {
		window = append(window, window[:relayproto.HeaderLen+relayproto.KeyLen+framePacket]...)
	}
	ack := relayproto.AppendPacket(nil, relayproto.FrameSend, a.key, []byte{1})
	errc := make(chan error, 1)
	go func() { // b acknowledges each full window
		n := 0
		for {
			b.conn.SetReadDeadline(time.Now().Add(time.Minute))
			f, err := b.fr.Next()
			if err != nil {
				errc <- err
				return
			}
			if f.Type != relayproto.FrameRecv {
				continue
			}
			if n++; n == frameWindow {
				n = 0
				if _, err := b.conn.Write(ack); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	start := time.Now()
	var moved int64
	for moved < size {
		a.conn.SetDeadline(time.Now().Add(time.Minute))
		if _, err := a.conn.Write(window); err != nil {
			return 0, err
		}
		for {
			f, err := a.fr.Next()
			if err != nil {
				select {
				case err2 := <-errc:
					return 0, fmt.Errorf("%v (receiver: %v)", err, err2)
				default:
					return 0, err
				}
			}
			if f.Type == relayproto.FrameRecv {
				break
			}
		}
		moved += frameWindow * framePacket
	}
	return float64(moved) / time.Since(start).Seconds() / (1 << 20), nil
}
