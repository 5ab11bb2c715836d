package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestInterspersedFlags(t *testing.T) {
	app := newApp()
	for in, want := range map[string]string{
		"meshcoord nodes show web --json":                           "meshcoord nodes show --json -- web",
		"meshcoord nodes rename web api --server http://x --json":   "meshcoord nodes rename --server http://x --json -- web api",
		"meshcoord keys create --tag tag:a --ephemeral --tag=tag:b": "meshcoord keys create --tag tag:a --ephemeral --tag=tag:b",
		"meshcoord keys revoke -- --odd":                            "meshcoord keys revoke -- --odd",
		"meshcoord --help":                                          "meshcoord --help",
		"meshcoord keys":                                            "meshcoord keys",
	} {
		if got := strings.Join(interspersed(app, strings.Fields(in)), " "); got != want {
			t.Errorf("%s\n got %s\nwant %s", in, got, want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"5": 5 * time.Second, "2.5": 2500 * time.Millisecond, "90s": 90 * time.Second, "10m": 10 * time.Minute, "": 0} {
		if got, err := parseDuration("x", in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"soon", "-1", "-5s", "1e300", "NaN", "nan", "Inf"} {
		if _, err := parseDuration("x", bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
}

// A node without IPv6 shows "-" in the nodes tables, not netip's "invalid IP".
func TestAddrOrDash(t *testing.T) {
	if got := addrOrDash(netip.Addr{}); got != "-" {
		t.Errorf("no address: %q, want -", got)
	}
	if got := addrOrDash(netip.MustParseAddr("fd01::6440:1")); got != "fd01::6440:1" {
		t.Errorf("an address: %q", got)
	}
}
