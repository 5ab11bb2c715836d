package coordinator

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// A body that does not arrive within the read timeout (a slow client, or an
// overloaded coordinator reading slowly) is not a bad request: the node
// must be told to retry (a 5xx), not that its logout is refused for good
// (a 4xx is final to meshinit), and nothing changes meanwhile.
func TestBodyReadTimeoutIsRetryable(t *testing.T) {
	old := bodyReadTimeout
	bodyReadTimeout = 200 * time.Millisecond
	t.Cleanup(func() { bodyReadTimeout = old })
	e := newEnv(t, Config{})
	key := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	for _, tc := range []struct{ path, secret string }{
		{meshapi.PathLogout, e.register(key, "slow").reg.Secret}, // decodeOptional
		{meshapi.PathRegister, ""},                               // decodeBody
	} {
		status, body := trickle(t, e.api.URL, tc.path, tc.secret)
		var eb meshapi.ErrorBody
		if err := json.Unmarshal([]byte(body), &eb); err != nil {
			t.Fatalf("%s: answer %d %q is not the coordinator's error body: %v", tc.path, status, body, err)
		}
		if status != http.StatusServiceUnavailable || eb.Error.Code != meshapi.ErrInternal {
			t.Fatalf("%s with a body that never completes: got %d %s (%s), want 503 internal (retryable)",
				tc.path, status, eb.Error.Code, eb.Error.Message)
		}
	}
	if n, ok := e.nodeByName("slow"); !ok || n.LoggedOut {
		t.Fatalf("the node whose logout body never arrived changed: %+v (present %v)", n, ok)
	}
}

// trickle sends a POST that announces a 64-byte body, sends 2 bytes of it
// and waits for the answer.
func trickle(t *testing.T, base, path, secret string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: coord\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{\"", path, secret)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s: no answer: %v", path, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	bufio.NewReader(resp.Body).WriteTo(&sb)
	return resp.StatusCode, sb.String()
}

// A change the store did not take is answered with a retryable 503 that
// names the coordinator's own causes (a timeout, a shutdown) and never the
// database's error text, which may name tables, constraints or files.
func TestUnavailableKeepsTheDatabasesErrorToItself(t *testing.T) {
	dbErr := errors.New(`ERROR: duplicate key value violates unique constraint "nodes_ipv4_key" (SQLSTATE 23505)`)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{dbErr, "the database refused the write"},
		{fmt.Errorf("commit: %w", dbErr), "the database refused the write"},
		{context.DeadlineExceeded, "did not take it in time"},
		{errWriterClosed, "shutting down"},
		{ownCause("the database did not take the change within 5s"), "within 5s"},
	} {
		e := unavailable(tc.err)
		if e.Status != http.StatusServiceUnavailable || e.Code != meshapi.ErrInternal {
			t.Errorf("unavailable(%v) = %d %s, want 503 internal (retryable)", tc.err, e.Status, e.Code)
		}
		if !strings.Contains(e.Message, tc.want) {
			t.Errorf("unavailable(%v) says %q, want it to say %q", tc.err, e.Message, tc.want)
		}
		if strings.Contains(e.Message, "SQLSTATE") || strings.Contains(e.Message, "nodes_ipv4_key") {
			t.Errorf("unavailable(%v) sends the database's error to the client: %q", tc.err, e.Message)
		}
	}
}
