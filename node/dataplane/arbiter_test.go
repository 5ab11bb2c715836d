package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"

	"github.com/meshinit/meshinit/meshapi"
)

// initiationFor is a handshake initiation addressed (by its mac1) to pk.
func initiationFor(pk meshapi.Key, fill byte) []byte {
	msg := bytes.Repeat([]byte{fill}, device.MessageInitiationSize)
	binary.LittleEndian.PutUint32(msg, device.MessageInitiationType)
	var cg device.CookieGenerator
	cg.Init(device.NoisePublicKey(pk))
	cg.AddMacs(msg)
	return msg
}

type arbiterRig struct {
	a         *handshakeArbiter
	clock     time.Time
	mu        sync.Mutex
	resent    [][]byte
	initiated chan meshapi.Key
	delayed   []func()
}

// request delivers a handshake request from k and runs the delayed work it
// caused.
func (r *arbiterRig) request(k meshapi.Key) {
	r.a.incomingRequest(k)
	for _, f := range r.delayed {
		f()
	}
	r.delayed = nil
}

func newArbiterRig(self meshapi.Key) *arbiterRig {
	r := &arbiterRig{a: newHandshakeArbiter(self), clock: time.Unix(1000, 0), initiated: make(chan meshapi.Key, 10)}
	r.a.now = func() time.Time { return r.clock }
	r.a.resend = func(msg []byte, _ conn.Endpoint) {
		r.mu.Lock()
		r.resent = append(r.resent, msg)
		r.mu.Unlock()
	}
	r.a.initiate = func(k meshapi.Key) { r.initiated <- k }
	// Delayed work is queued and run by request(), after the arbiter's
	// call returned (it holds its lock while scheduling).
	r.a.after = func(_ time.Duration, f func()) { r.delayed = append(r.delayed, f) }
	return r
}

func key(b byte) meshapi.Key { var k meshapi.Key; k[0] = b; return k }

var epA = netip.MustParseAddrPort("127.0.0.1:1001")

func TestArbiterSmallerSideSendsRequestsInstead(t *testing.T) {
	self, larger := key(0x10), key(0x20)
	r := newArbiterRig(self)
	r.a.setPeer(larger, true)
	r.a.started(larger)
	if !r.a.outgoingInitiation(initiationFor(larger, 1), larger, nil) {
		t.Fatal("initiation to a larger key went out unchanged, want a request instead")
	}
	// A stranger's initiation is left alone.
	if r.a.outgoingInitiation(initiationFor(key(0x30), 3), key(0x30), nil) {
		t.Error("initiation to an unknown key was replaced")
	}
}

func TestArbiterLargerSideAnswersRequests(t *testing.T) {
	self, smaller := key(0x20), key(0x10)
	r := newArbiterRig(self)
	r.a.setPeer(smaller, true)

	// While the device has not started the peer, a request is held; once
	// started, it gets a fresh initiation (the device sends none by itself).
	r.request(smaller)
	if len(r.resent) != 0 || len(r.initiated) != 0 {
		t.Fatal("a request for a starting peer was answered before the start")
	}
	r.a.started(smaller)
	select {
	case <-r.initiated:
	case <-time.After(5 * time.Second):
		t.Fatal("a request held during the start got no initiation")
	}

	// Our own initiation passes and is kept; a request resends it, a
	// bounded number of times.
	ini := initiationFor(smaller, 7)
	if r.a.outgoingInitiation(ini, smaller, nil) {
		t.Fatal("initiation to a smaller key was replaced")
	}
	for range maxResends + 2 {
		r.request(smaller)
	}
	if len(r.resent) != maxResends {
		t.Fatalf("resent %d times, want %d", len(r.resent), maxResends)
	}
	if !bytes.Equal(r.resent[0], ini) {
		t.Error("resent something other than our pending initiation")
	}
	if len(r.initiated) != 0 {
		t.Error("asked for a fresh initiation while ours was still current")
	}

	// An answered initiation is not sent again.
	r.a.setPeer(smaller, true)
	r.a.started(smaller)
	r.resent = nil
	ini2 := initiationFor(smaller, 8)
	r.a.outgoingInitiation(ini2, smaller, nil)
	response := make([]byte, device.MessageResponseSize)
	binary.LittleEndian.PutUint32(response, device.MessageResponseType)
	copy(response[8:12], ini2[4:8]) // receiver index = our sender index
	r.a.incomingResponse(response)
	r.request(smaller)
	if len(r.resent) != 0 {
		t.Error("an answered initiation was sent again")
	}

	// Once it is older than wireguard-go's retry interval, a request asks
	// the device for a fresh one, at most once a second.
	r.clock = r.clock.Add(device.RekeyTimeout + time.Second)
	r.request(smaller)
	r.request(smaller)
	select {
	case k := <-r.initiated:
		if k != smaller {
			t.Errorf("initiated to %v", k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no fresh initiation after a request")
	}
	select {
	case <-r.initiated:
		t.Error("two fresh initiations within a second")
	default:
	}
}

func TestArbiterIgnoresRequestsItShouldNotGet(t *testing.T) {
	self := key(0x20)
	r := newArbiterRig(self)
	larger := key(0x30)
	r.a.setPeer(larger, false)
	for _, k := range []meshapi.Key{larger, key(0x05)} { // a larger key must not ask; an unknown key cannot
		r.request(k)
	}
	if len(r.resent) != 0 || len(r.initiated) != 0 {
		t.Error("answered a request from a larger or unknown key")
	}
}

// An initiation from a new peer that arrived before the device knew the
// peer was rejected; the peer sends it again when our first request
// reaches it, so by the time that request goes out the copy must no
// longer count as a repeat. Later copies are repeats again, and finishing
// UpsertPeer (started) does not forget a second time.
func TestArbiterLetsARejectedInitiationThroughOnceWeAsk(t *testing.T) {
	self, larger := key(0x10), key(0x20)
	r := newArbiterRig(self)
	theirs := initiationFor(self, 5) // an initiation from larger, addressed to us
	deliver := func() bool { return r.a.acceptHandshake(append([]byte(nil), theirs...)) }
	if !deliver() {
		t.Fatal("the first copy of an initiation was blanked")
	}
	r.a.setPeer(larger, true)
	if deliver() {
		t.Fatal("a second copy passed before the device sent anything to the new peer")
	}
	// The device holds the peer and asks it for a handshake; UpsertPeer
	// has not returned yet.
	if !r.a.outgoingInitiation(initiationFor(larger, 1), larger, nil) {
		t.Fatal("initiation to a larger key was not replaced by a request")
	}
	if !deliver() {
		t.Fatal("the copy the request asks for was blanked as a repeat")
	}
	r.a.started(larger)
	if deliver() {
		t.Error("a further copy passed after the new peer's memory was cleared once")
	}
}
