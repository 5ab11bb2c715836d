package controlclient

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

// FuzzErrorAnswer feeds error answers from whatever sits at the
// coordinator's address through readError: nothing panics, only a body
// that is the coordinator's ErrorBody (a non-empty code) can ever count as
// logged out, and every other answer is retried.
func FuzzErrorAnswer(f *testing.F) {
	for _, s := range []struct {
		status int
		body   string
	}{
		{401, `{"error":{"code":"logged_out","message":"node logged out"}}`},
		{401, `{"error":{"code":"unauthorized","message":"unknown node secret"}}`},
		{403, `{"error":{"code":"forbidden","message":"not yours"}}`},
		{401, "<html><body><h1>401 Authorization Required</h1>nginx</body></html>"},
		{403, "Forbidden"},
		{403, `{"error":"forbidden"}`},
		{401, `{"error":{"code":""}}`},
		{502, ""},
		{404, `{"message":"no route"}`},
	} {
		f.Add(s.status, s.body)
	}
	c, err := New("http://127.0.0.1:1", Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 100 || status > 999 {
			return
		}
		resp := &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(body))}
		err := c.readError(resp)
		var eb meshapi.ErrorBody
		own := json.Unmarshal([]byte(body), &eb) == nil && eb.Error.Code != ""
		if IsLoggedOut(err) && !own {
			t.Fatalf("HTTP %d %q counts as logged out without the coordinator's error body", status, body)
		}
		if !own && !retryable(err) {
			t.Fatalf("HTTP %d %q is not the coordinator's answer but is not retried: %v", status, body, err)
		}
	})
}
