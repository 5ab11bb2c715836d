package meshapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeStrict(t *testing.T) {
	good := `{"auth_key":"mk-x","hostname":"web","public_key":"` + (Key{9}).String() + `"}`
	var r RegisterRequest
	if err := Decode(strings.NewReader(good), MaxBodyBytes, &r); err != nil {
		t.Fatalf("good body refused: %v", err)
	}
	if r.Hostname != "web" || r.PublicKey != (Key{9}) {
		t.Fatalf("decoded wrong: %+v", r)
	}

	bad := map[string]string{
		"unknown field": `{"auth_key":"k","hostnme":"web"}`,
		"trailing data": `{"auth_key":"k"} {"auth_key":"k"}`,
		"empty":         ``,
		"not an object": `[1,2]`,
		"bad key":       `{"public_key":"nope"}`,
		"bad endpoint":  `{"endpoints":["300.1.1.1:5"]}`,
		"truncated":     `{"auth_key":`,
	}
	for name, body := range bad {
		var r RegisterRequest
		if err := Decode(strings.NewReader(body), MaxBodyBytes, &r); err == nil {
			t.Errorf("%s: accepted %q", name, body)
		}
	}
}

func TestDecodeLimit(t *testing.T) {
	body := `{"hostname":"` + strings.Repeat("a", 100) + `"}`
	var r RegisterRequest
	err := Decode(strings.NewReader(body), 50, &r)
	if !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("oversized body: got %v, want ErrBodyTooLarge", err)
	}
	if err := Decode(strings.NewReader(body), int64(len(body)), &r); err != nil {
		t.Fatalf("body of exactly the limit refused: %v", err)
	}
}

// FuzzDecodeRegister feeds arbitrary bodies to the strict decoder with the
// registration type, the first thing an unauthenticated client can send.
func FuzzDecodeRegister(f *testing.F) {
	f.Add([]byte(`{"auth_key":"mk-abc","hostname":"web","public_key":"` + (Key{1}).String() + `","endpoints":["127.0.0.1:41641","[::1]:5"]}`))
	f.Add([]byte(`{"auth_key":1}`))
	f.Add([]byte(`{"endpoints":[null]}`))
	f.Add([]byte(`{}{}`))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, body []byte) {
		var r RegisterRequest
		if err := DecodeBytes(body, &r); err != nil {
			return
		}
		// Whatever the strict decoder accepts must survive a round trip:
		// what the server stores is what the client meant.
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted %q but cannot re-encode it: %v", body, err)
		}
		var r2 RegisterRequest
		if err := DecodeBytes(again, &r2); err != nil {
			t.Fatalf("re-encoded %s no longer decodes: %v", again, err)
		}
		third, _ := json.Marshal(r2)
		if !bytes.Equal(again, third) {
			t.Fatalf("round trip changed the request: %s vs %s", again, third)
		}
	})
}

// FuzzDecodeMapMessage covers the client side: a map stream line.
func FuzzDecodeMapMessage(f *testing.F) {
	f.Add([]byte(`{"type":"full","version":3,"epoch":"e1","domain":"mesh.internal","prefixes":["100.64.0.0/10"],"peers":[{"id":2,"name":"web","ipv4":"100.64.0.2","public_key":"` + (Key{2}).String() + `"}],"keepalive_interval":"15s"}`))
	f.Add([]byte(`{"type":"remove","version":4,"removed":[2]}`))
	f.Add([]byte(`{"type":"presence","version":5,"presence":[{"id":2,"online":false,"last_seen":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"type":"keepalive","version":5}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var m MapMessage
		_ = DecodeBytes(line, &m)
	})
}
