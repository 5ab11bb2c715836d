package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// testNode is a minimal protocol client: enough to register, hold a map
// stream and log out, as a real node would.
type testNode struct {
	t      testing.TB
	url    string
	resp   meshapi.RegisterResponse
	cancel context.CancelFunc
	done   chan struct{}
	lines  chan meshapi.MapMessage
}

func register(t testing.TB, url, key, hostname string) *testNode {
	t.Helper()
	var pub meshapi.Key
	rand.Read(pub[:])
	body, _ := json.Marshal(meshapi.RegisterRequest{AuthKey: key, Hostname: hostname, PublicKey: pub})
	resp, err := http.Post(url+meshapi.PathRegister, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	n := &testNode{t: t, url: url}
	if resp.StatusCode != http.StatusOK {
		var eb meshapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		t.Fatalf("register %s: HTTP %d %+v", hostname, resp.StatusCode, eb.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(&n.resp); err != nil {
		t.Fatal(err)
	}
	return n
}

// connect opens the map stream and returns once the first line arrived.
func (n *testNode) connect() {
	n.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+meshapi.PathMap, nil)
	req.Header.Set("Authorization", "Bearer "+n.resp.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		n.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		n.t.Fatalf("map stream of %s: HTTP %d", n.resp.Node.Name, resp.StatusCode)
	}
	n.cancel = cancel
	n.done = make(chan struct{})
	n.lines = make(chan meshapi.MapMessage, 1024)
	go func() {
		defer close(n.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), meshapi.MaxStreamLineBytes)
		for sc.Scan() {
			var m meshapi.MapMessage
			if meshapi.DecodeBytes(sc.Bytes(), &m) == nil {
				select {
				case n.lines <- m:
				default:
				}
			}
		}
	}()
	select {
	case m := <-n.lines:
		if m.Type != meshapi.MsgFull {
			n.t.Fatalf("first map line is %q, want full", m.Type)
		}
	case <-time.After(10 * time.Second):
		n.t.Fatal("no full map within 10s")
	}
}

// drop closes the stream as a crashed node would (no logout).
func (n *testNode) drop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

func (n *testNode) logout() int {
	n.t.Helper()
	req, _ := http.NewRequest("POST", n.url+meshapi.PathLogout, nil)
	req.Header.Set("Authorization", "Bearer "+n.resp.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (n *testNode) String() string { return fmt.Sprintf("%s(%d)", n.resp.Node.Name, n.resp.Node.ID) }
