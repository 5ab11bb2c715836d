package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// A device that fails half-built (here: its UDP port is taken) returns the
// error instead of hanging, also with a relay configured whose connection
// was never started. (Its close used to wait for that connection's loop.)
func TestNewFailsWithoutHangingWhenTheRelayNeverStarted(t *testing.T) {
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A wildcard socket on the same port would collide too; the relay URL
	// is never dialled, since the device never comes up.
	wild, err := net.ListenUDP("udp4", &net.UDPAddr{Port: taken.LocalAddr().(*net.UDPAddr).Port})
	if err == nil {
		defer wild.Close()
	}
	priv, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		dev, err := New(Config{
			PrivateKey: priv,
			ListenPort: taken.LocalAddr().(*net.UDPAddr).Port,
			Addresses:  []netip.Addr{netip.MustParseAddr("100.64.0.1")},
			Prefixes:   testPrefixes,
			Log:        testLogger(t),
			Relay:      &RelayConfig{URL: "http://127.0.0.1:1"},
		})
		if dev != nil {
			dev.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("New on a taken port: %v, want EADDRINUSE", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("New on a taken UDP port with a relay configured did not return within 30s")
	}
}
