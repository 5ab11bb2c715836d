package controlclient

import (
	"encoding/json"
	"testing"

	"github.com/meshinit/meshinit/meshapi"
)

// FuzzStreamLine feeds untrusted map-stream lines through the decoder and
// NetMap.Apply, after a valid full map: nothing may panic, and the map's
// invariants hold whatever the coordinator sends.
func FuzzStreamLine(f *testing.F) {
	seeds := []string{
		`{"type":"upsert","version":7,"peers":[{"id":9,"name":"x","ipv4":"100.64.0.9","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}]}`,
		`{"type":"remove","version":7,"removed":[2]}`,
		`{"type":"presence","version":7,"presence":[{"id":2,"online":true,"last_seen":"2026-01-02T03:04:05Z"}]}`,
		`{"type":"self","version":7,"self":{"id":1,"name":"n"}}`,
		`{"type":"full","version":1,"epoch":"e2","self":{"id":1},"peers":[{"id":1},{"id":2}],"future_field":[1,2]}`,
		`{"type":"keepalive","version":99}`,
		`{"type":"full"}`,
		`{"type":"upsert","version":18446744073709551615}`,
		`{}`, `[]`, `null`, `{"type":"remove","removed":"x"}`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var m NetMap
		if _, err := m.Apply(full(5, peer(2, "a"), peer(3, "b"))); err != nil {
			t.Fatal(err)
		}
		var msg meshapi.MapMessage
		if json.Unmarshal([]byte(line), &msg) != nil {
			return
		}
		before := m.Version
		c, err := m.Apply(&msg)
		if err != nil {
			return
		}
		if _, ok := m.Peers[m.Self.ID]; ok {
			t.Fatalf("self became its own peer after %q", line)
		}
		if msg.Type != meshapi.MsgFull && m.Version < before {
			t.Fatalf("delta moved the version back from %d to %d", before, m.Version)
		}
		for _, id := range c.Removed {
			if _, ok := m.Peers[id]; ok {
				t.Fatalf("peer %d reported removed but still in the map", id)
			}
		}
		for _, p := range c.Upserted {
			if _, ok := m.Peers[p.ID]; !ok {
				t.Fatalf("peer %d reported upserted but not in the map", p.ID)
			}
		}
	})
}

func TestParseCoordinatorURL(t *testing.T) {
	good := map[string]string{
		"http://127.0.0.1:8080":  "http://127.0.0.1:8080",
		"127.0.0.1:8080":         "http://127.0.0.1:8080",
		"https://coord.test/":    "https://coord.test",
		" http://[::1]:9/mesh/ ": "http://[::1]:9/mesh",
	}
	for in, want := range good {
		u, err := ParseCoordinatorURL(in)
		if err != nil || u.String() != want {
			t.Errorf("ParseCoordinatorURL(%q) = %v, %v; want %s", in, u, err, want)
		}
	}
	for _, in := range []string{"", "ftp://x", "http://", "http://u:p@h", "http://h/?q=1", "http://h/#f"} {
		if _, err := ParseCoordinatorURL(in); err == nil {
			t.Errorf("ParseCoordinatorURL(%q) accepted", in)
		}
	}
}
