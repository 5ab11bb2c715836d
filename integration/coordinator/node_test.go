package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
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

// register registers a node, failing the test if that fails.
func register(t testing.TB, url, key, hostname string) *testNode {
	t.Helper()
	n, err := tryRegister(t, url, key, hostname)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tryRegister registers a node with a fresh WireGuard key; safe to call
// from any goroutine.
func tryRegister(t testing.TB, url, key, hostname string) (*testNode, error) {
	var pub meshapi.Key
	rand.Read(pub[:])
	body, _ := json.Marshal(meshapi.RegisterRequest{AuthKey: key, Hostname: hostname, PublicKey: pub})
	resp, err := http.Post(url+meshapi.PathRegister, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	n := &testNode{t: t, url: url}
	if resp.StatusCode != http.StatusOK {
		var eb meshapi.ErrorBody
		json.NewDecoder(resp.Body).Decode(&eb)
		return nil, fmt.Errorf("register %s: HTTP %d %+v", hostname, resp.StatusCode, eb.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(&n.resp); err != nil {
		return nil, err
	}
	return n, nil
}

// connect opens the map stream and returns once the first line arrived,
// failing the test if that fails.
func (n *testNode) connect() {
	n.t.Helper()
	if err := n.tryConnect(10 * time.Second); err != nil {
		n.t.Fatal(err)
	}
}

// tryConnect is connect that returns the error; safe from any goroutine.
func (n *testNode) tryConnect(timeout time.Duration) error {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", n.url+meshapi.PathMap, nil)
	req.Header.Set("Authorization", "Bearer "+n.resp.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return err
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		return &httpError{status: resp.StatusCode, what: "map stream of " + n.resp.Node.Name}
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
			n.drop()
			return fmt.Errorf("first map line is %q, want full", m.Type)
		}
	case <-n.done:
		n.drop()
		return errors.New("the map stream ended before its first line")
	case <-time.After(timeout):
		n.drop()
		return fmt.Errorf("no full map within %v", timeout)
	}
	return nil
}

// httpError is an answer other than 200.
type httpError struct {
	status int
	what   string
}

func (e *httpError) Error() string { return fmt.Sprintf("%s: HTTP %d", e.what, e.status) }

// drop closes the stream as a crashed node would (no logout).
func (n *testNode) drop() {
	if n.cancel != nil {
		n.cancel()
		<-n.done
		n.cancel = nil
	}
}

// logout logs the node out and returns the HTTP status, failing the test
// if there is no answer.
func (n *testNode) logout() int {
	n.t.Helper()
	status, err := n.tryLogout()
	if err != nil {
		n.t.Fatal(err)
	}
	return status
}

// tryLogout is logout that returns the error; safe from any goroutine.
func (n *testNode) tryLogout() (int, error) {
	req, _ := http.NewRequest("POST", n.url+meshapi.PathLogout, nil)
	req.Header.Set("Authorization", "Bearer "+n.resp.Secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (n *testNode) String() string { return fmt.Sprintf("%s(%d)", n.resp.Node.Name, n.resp.Node.ID) }
