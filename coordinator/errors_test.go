package coordinator

import (
	"bufio"
	"encoding/json"
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
