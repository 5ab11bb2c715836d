package coordinator

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// TestMapStreamOverHTTP2: HTTP/2 streams cannot be hijacked; they go
// through the ResponseWriter and must behave the same.
func TestMapStreamOverHTTP2(t *testing.T) {
	e := newEnv(t, Config{})
	srv := httptest.NewUnstartedServer(e.s.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	defer e.s.Close() // streams end before the server closes
	hc := srv.Client()

	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	for _, h := range []string{"x", "y", "z"} {
		e.register(k.Key, h) // peers in a's full map
	}
	a := e.register(k.Key, "a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+meshapi.PathMap, nil)
	req.Header.Set("Authorization", "Bearer "+a.reg.Secret)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != meshapi.ContentTypeStream {
		t.Fatalf("got %s %d %q, want an HTTP/2 stream", resp.Proto, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan meshapi.MapMessage, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), meshapi.MaxStreamLineBytes)
		for sc.Scan() {
			var m meshapi.MapMessage
			if meshapi.DecodeBytes(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	next := func() meshapi.MapMessage {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			return m
		case <-time.After(wait):
			t.Fatal("no line")
		}
		return meshapi.MapMessage{}
	}
	if m := next(); m.Type != meshapi.MsgFull || m.Self.ID != a.id() || len(m.Peers) != 3 {
		t.Fatalf("first line %+v", m)
	}
	b := e.register(k.Key, "b")
	if m := next(); m.Type != meshapi.MsgUpsert || m.Peers[0].ID != b.id() {
		t.Fatalf("delta %+v", m)
	}
	if _, err := e.ac.DeleteNode(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	end := time.After(wait)
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return // the server ended the stream
			}
		case <-end:
			t.Fatal("deleting the node did not end its HTTP/2 stream")
		}
	}
}
