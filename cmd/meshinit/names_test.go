package main

import (
	"strings"
	"testing"
)

// A malformed MESH_CONNECT or MESH_WAIT_FOR stops meshinit before the
// network (exit 125 in supervise), quoting the entry and naming the
// variable.
func TestNewMeshHooksQuotesBadConnectAndWaitFor(t *testing.T) {
	cases := []struct {
		mutate func(*options)
		want   []string
	}{
		{func(o *options) { o.connect = "5432:db:5432,6379:cache" }, []string{"MESH_CONNECT", `"6379:cache"`, "LOCAL_PORT:NAME:PORT"}},
		{func(o *options) { o.connect = "99999:db:1" }, []string{"MESH_CONNECT", `"99999:db:1"`, "local port"}},
		{func(o *options) { o.waitFor = "db" }, []string{"MESH_WAIT_FOR", `"db"`, "NAME:PORT"}},
		{func(o *options) { o.waitFor = "db:5432, ca che:1" }, []string{"MESH_WAIT_FOR", `"ca che:1"`, "not a valid name"}},
	}
	for _, c := range cases {
		o := testOptions()
		o.authKey = "k"
		c.mutate(o)
		_, err := newMesh(o)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("connect=%q wait-for=%q: %v; want it to say %s", o.connect, o.waitFor, err, w)
			}
		}
	}
	o := testOptions()
	o.authKey = "k"
	o.connect, o.waitFor = "5432:db:5432", "db:5432,cache.mesh.internal:6379"
	if _, err := newMesh(o); err != nil {
		t.Fatalf("good settings: %v", err)
	}
}

func TestMeshDNSSwitch(t *testing.T) {
	for in, want := range map[string]bool{"on": true, "ON": true, " off ": false, "0": false, "true": true} {
		if got, err := parseOnOff(in); err != nil || got != want {
			t.Errorf("parseOnOff(%q) = %v, %v", in, got, err)
		}
	}
	o := testOptions()
	o.authKey = "k"
	o.dns = "maybe"
	if _, err := newMesh(o); err == nil || !strings.Contains(err.Error(), `MESH_DNS (--dns) is "maybe": use on or off`) {
		t.Fatalf("bad MESH_DNS: %v", err)
	}
}
