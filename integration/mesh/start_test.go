package mesh

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// A key the coordinator refuses, or no coordinator at all: meshinit exits
// 125 saying which, and the command never runs.
func TestRefusedStartNeverRunsTheCommand(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	ns, url := loopbackNS(t, c.Addr)
	createKey := func(flags ...string) meshapi.KeyCreateResponse {
		var k meshapi.KeyCreateResponse
		out := c.CLI(t, append([]string{"keys", "create", "--json"}, flags...)...)
		if err := json.Unmarshal(out, &k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	oneOff := createKey("--ephemeral")
	revoked := createKey("--reusable")
	c.CLI(t, "keys", "revoke", revoked.ID)
	expired := createKey("--reusable", "--expiry", "1s")
	harness.Eventually(t, waitLimit, "the 1s key expires", func() (bool, string) {
		var keys []meshapi.AuthKey
		json.Unmarshal(c.CLI(t, "keys", "list", "--json"), &keys)
		for _, k := range keys {
			if k.ID == expired.ID {
				return k.State == meshapi.KeyExpired, string(k.State)
			}
		}
		return false, "key not listed"
	})

	// Use the one-off key once, successfully.
	marker := filepath.Join(t.TempDir(), "ran")
	ok := startMeshinit(t, nodeSpec{coord: url, netns: ns, key: oneOff.Key, hostname: "once", command: []string{demo(t), "touch", marker}})
	if code := ok.wait(waitLimit); code != 0 {
		t.Fatalf("first use of a one-off key: exit %d\n%s", code, ok.stderr)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the command did not run with a good key: %v", err)
	}

	// The closed port is chosen inside the node's namespace, where the
	// relay to the coordinator holds its own port: one chosen on the host
	// could be that very port (it once was, and the "unreachable" node got
	// the coordinator's "revoked" instead).
	dead := fmt.Sprintf("http://127.0.0.1:%d", closedPortInNetns(t, "/run/netns/"+ns))

	cases := []struct {
		name, coord, key, want string
	}{
		{"used", url, oneOff.Key, "used"},
		{"revoked", url, revoked.Key, "revoked"},
		{"expired", url, expired.Key, "expired"},
		{"invalid", url, strings.Repeat("x", len(oneOff.Key)), "invalid"},
		{"unreachable", dead, revoked.Key, "unreachable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "ran")
			m := startMeshinit(t, nodeSpec{coord: tc.coord, netns: ns, key: tc.key, hostname: "refused",
				env: []string{"MESH_WAIT_TIMEOUT=1s"}, command: []string{demo(t), "touch", marker}})
			if code := m.wait(waitLimit); code != 125 {
				t.Fatalf("exit %d, want 125\nstderr:\n%s", code, m.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the command ran although the mesh did not come up")
			}
			if !strings.Contains(m.stderr.String(), tc.want) {
				t.Fatalf("stderr does not say %q:\n%s", tc.want, m.stderr)
			}
			if strings.Contains(m.stderr.String(), tc.key) {
				t.Fatal("the auth key appears in meshinit's output")
			}
		})
	}
}

// The command's environment: the mesh variables and the proxy, never the
// key; the key may come from a file (a Docker secret). Proxy variables the
// container already had are replaced (NO_PROXY is extended), so the app
// does not go to a proxy that cannot reach the mesh. When the command exits
// by itself the node logs out.
func TestCommandEnvironment(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: time.Minute})
	ns, url := loopbackNS(t, c.Addr)
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	for _, fromFile := range []bool{false, true} {
		name := map[bool]string{false: "envvar", true: "envfile"}[fromFile]
		t.Run(name, func(t *testing.T) {
			spec := nodeSpec{coord: url, netns: ns, hostname: name, command: []string{demo(t), "env"},
				env: []string{"MESH_PROXY=127.0.0.1:0", "HTTP_PROXY=http://corp.test:3128", "NO_PROXY=corp.test"}}
			if fromFile {
				spec.keyFile = keyFile(t, key)
			} else {
				spec.key = key
			}
			since := lastSeq(t, c)
			m := startMeshinit(t, spec)
			if code := m.wait(waitLimit); code != 0 {
				t.Fatalf("exit %d\nstderr:\n%s", code, m.stderr)
			}
			env := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(m.stdout.String()), "\n") {
				k, v, _ := strings.Cut(line, "=")
				env[k] = v
			}
			if env["MESH_NAME"] != name+".mesh.internal" || env["MESH_IPV4"] == "" || env["MESH_IPV6"] == "" {
				t.Errorf("mesh variables missing: %v", env)
			}
			proxy := strings.TrimPrefix(env["ALL_PROXY"], "socks5h://")
			if _, _, err := net.SplitHostPort(proxy); err != nil || proxy == "" {
				t.Errorf("ALL_PROXY=%q, want socks5h://127.0.0.1:PORT", env["ALL_PROXY"])
			}
			for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
				if env[k] != "http://"+proxy {
					t.Errorf("%s=%q, want http://%s", k, env[k], proxy)
				}
			}
			if env["all_proxy"] != env["ALL_PROXY"] || env["NO_PROXY"] != "localhost,127.0.0.1,::1,corp.test" || env["no_proxy"] != env["NO_PROXY"] {
				t.Errorf("proxy variables: %v", env)
			}
			if _, ok := env["MESH_AUTHKEY"]; ok {
				t.Error("the command sees MESH_AUTHKEY")
			}
			if strings.Contains(m.stdout.String(), key) {
				t.Error("the key appears in the command's environment")
			}
			if ev := deletion(t, c, name, since, waitLimit); ev.Reason != meshapi.ReasonLogout {
				t.Errorf("after the command exited by itself the node was deleted with reason %q, want logout", ev.Reason)
			}
		})
	}
}
