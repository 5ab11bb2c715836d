package node

import (
	"errors"
	"net"
	"syscall"
	"testing"
)

func TestPickUDPPortIsFreeForTheDevice(t *testing.T) {
	port, err := pickUDPPort()
	if err != nil || port <= 0 {
		t.Fatalf("pickUDPPort = %d, %v", port, err)
	}
	c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
	if err != nil {
		t.Fatalf("the picked port %d cannot be bound: %v", port, err)
	}
	defer c.Close()
	// The device's bind opens IPv6 too, on the same port, beside IPv4.
	c6, err := net.ListenUDP("udp6", &net.UDPAddr{Port: port})
	if errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("the picked port %d is taken for IPv6: %v", port, err)
	}
	if err == nil {
		c6.Close()
	}
}

func TestHostEndpointsUseThePortAndSkipUnusableAddresses(t *testing.T) {
	if eps := hostEndpoints(0); eps != nil {
		t.Fatalf("endpoints for port 0: %v", eps)
	}
	eps := hostEndpoints(41641)
	if len(eps) == 0 {
		t.Fatal("no endpoints at all: even a host without network has loopback")
	}
	seen4 := false
	for i, ep := range eps {
		a := ep.Addr()
		if ep.Port() != 41641 || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
			t.Errorf("unusable endpoint %v", ep)
		}
		if a.Is4() {
			if i > 0 && !seen4 {
				t.Errorf("IPv4 endpoint %v after an IPv6 one: %v", ep, eps)
			}
			seen4 = true
		}
		if a.IsLoopback() && len(eps) > 1 && !eps[0].Addr().IsLoopback() {
			t.Errorf("loopback %v listed beside real addresses: %v", ep, eps)
		}
	}
}
