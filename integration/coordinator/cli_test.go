package coordinator_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/internal/testcert"
	"github.com/meshinit/meshinit/meshapi"
)

// coordtestProbe runs the binary with its own arguments and environment.
type coordtestProbe struct {
	bin string
	env []string
}

func (p *coordtestProbe) run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func TestCLIEndToEnd(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{EphemeralTimeout: time.Minute})

	// The admin socket is private.
	if fi, err := os.Stat(c.AdminSocket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	// keys create: the key alone on stdout, the summary on stderr.
	out, errOut, err := c.TryCLI("keys", "create", "--ephemeral", "--reusable", "--tag", "tag:ci", "--tag", "tag:web",
		"--expiry", "24h", "--ephemeral-timeout", "90", "--description", "ci runners")
	if err != nil {
		t.Fatalf("keys create: %v %s", err, errOut)
	}
	key := strings.TrimSpace(string(out))
	if strings.Count(string(out), "\n") != 1 || !strings.HasPrefix(key, "mkey-") || !strings.Contains(string(errOut), "shown only this once") {
		t.Fatalf("keys create printed %q / %q", out, errOut)
	}
	keyID := strings.Split(key, "-")[1]

	var keys []meshapi.AuthKey
	mustJSON(t, c.CLI(t, "keys", "list", "--json"), &keys)
	if len(keys) != 1 || keys[0].ID != keyID || !keys[0].Ephemeral || !keys[0].Reusable ||
		time.Duration(keys[0].EphemeralTimeout) != 90*time.Second || keys[0].Description != "ci runners" || len(keys[0].Tags) != 2 {
		t.Fatalf("keys list --json: %+v", keys)
	}
	if table := string(c.CLI(t, "keys", "list")); !strings.HasPrefix(table, "ID ") || !strings.Contains(table, keyID) || strings.Contains(table, key) {
		t.Fatalf("keys list table (must never show the secret):\n%s", table)
	}

	web := register(t, c.URL, key, "web")
	register(t, c.URL, key, "web")
	web.connect()
	c.WaitEvent(t, 10*time.Second, func(e meshapi.Event) bool { return e.Type == meshapi.EventOnline && e.Name == "web" })

	// nodes list --json: an array with the contract's fields.
	var raw []map[string]any
	mustJSON(t, c.CLI(t, "nodes", "list", "--json"), &raw)
	if len(raw) != 2 {
		t.Fatalf("nodes list --json: %v", raw)
	}
	for _, f := range []string{"id", "name", "fqdn", "hostname", "ipv4", "ipv6", "online", "last_seen", "ephemeral", "tags", "created", "key_id"} {
		if _, ok := raw[0][f]; !ok {
			t.Errorf("nodes list --json lacks %q: %v", f, raw[0])
		}
	}
	if raw[0]["name"] != "web" || raw[1]["name"] != "web-1" || raw[0]["online"] != true || raw[0]["fqdn"] != "web.mesh.internal" || raw[0]["key_id"] != keyID {
		t.Fatalf("nodes: %v", raw)
	}
	table := string(c.CLI(t, "nodes", "list"))
	if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, "online") || !strings.Contains(table, "web-1") || !strings.Contains(table, "100.64.0.2") {
		t.Fatalf("nodes list table:\n%s", table)
	}
	var shown meshapi.Node
	mustJSON(t, c.CLI(t, "nodes", "show", "web", "--json"), &shown)
	if shown.ID != web.resp.Node.ID {
		t.Fatalf("nodes show web: %+v", shown)
	}
	if s := string(c.CLI(t, "nodes", "show", "2")); !strings.Contains(s, "web-1.mesh.internal") {
		t.Fatalf("nodes show 2:\n%s", s)
	}

	if s := string(c.CLI(t, "nodes", "rename", "web-1", "api")); !strings.Contains(s, "renamed to api") {
		t.Fatalf("rename: %s", s)
	}
	var act meshapi.NodeActionResponse
	mustJSON(t, c.CLI(t, "nodes", "expire", "api", "--json"), &act)
	if !act.Deleted || act.Node.Name != "api" {
		t.Fatalf("expire of an ephemeral node: %+v", act)
	}
	if s := string(c.CLI(t, "nodes", "delete", "web")); !strings.Contains(s, "deleted") {
		t.Fatalf("delete: %s", s)
	}
	if s := string(c.CLI(t, "keys", "revoke", keyID)); !strings.Contains(s, "revoked") {
		t.Fatalf("revoke: %s", s)
	}

	// events, table and JSON lines, in order with the reasons.
	var types []string
	for _, line := range strings.Split(strings.TrimSpace(string(c.CLI(t, "events", "--json"))), "\n") {
		var e meshapi.Event
		mustJSON(t, []byte(line), &e)
		types = append(types, string(e.Type)+":"+e.Name+":"+string(e.Reason))
	}
	want := "registered:web: registered:web-1: online:web: renamed:api: deleted:api:admin deleted:web:admin"
	if strings.Join(types, " ") != want {
		t.Fatalf("events:\n got %s\nwant %s", strings.Join(types, " "), want)
	}
	if s := string(c.CLI(t, "events")); !strings.Contains(s, "deleted") || !strings.Contains(s, "admin") || !strings.HasPrefix(s, "TIME") {
		t.Fatalf("events table:\n%s", s)
	}

	// Errors: a clear message and exit 1; bad usage exit 2.
	_, errOut, err = c.TryCLI("nodes", "show", "nope")
	if exitCode(err) != 1 || !strings.Contains(string(errOut), `no node with id or name "nope"`) {
		t.Fatalf("unknown node: %v %q", err, errOut)
	}
	_, errOut, err = c.TryCLI("nodes", "rename", "web")
	if exitCode(err) != 2 {
		t.Fatalf("rename with one argument: %v %q", err, errOut)
	}
	_, errOut, err = c.TryCLI("keys", "create", "--expiry", "soon")
	if exitCode(err) != 2 || !strings.Contains(string(errOut), "--expiry") {
		t.Fatalf("bad duration: %v %q", err, errOut)
	}
	p := &coordtestProbe{bin: c.Binary, env: []string{"MESHCOORD_ADMIN_SOCKET=" + filepath.Join(t.TempDir(), "none.sock")}}
	if out, code := p.run(t, "nodes", "list"); code != 1 || !strings.Contains(out, "meshcoord serve") {
		t.Fatalf("no server: exit %d %q", code, out)
	}
}

func TestEventsFollow(t *testing.T) {
	harness.Integration(t)
	c := coordtest.Start(t, coordtest.Options{})
	key := c.CreateKey(t, "--ephemeral", "--reusable")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, c.Binary, "events", "--follow", "--json", "--admin-socket", c.AdminSocket)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel() // kills the follower
		cmd.Wait()
	}()
	lines := make(chan meshapi.Event, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var e meshapi.Event
			if json.Unmarshal(sc.Bytes(), &e) == nil {
				select {
				case lines <- e:
				case <-ctx.Done():
					return
				}
			}
		}
		close(lines)
	}()
	n := register(t, c.URL, key, "follow-me")
	if n.logout() != http.StatusOK {
		t.Fatal("logout failed")
	}
	for _, want := range []string{"registered", "deleted"} {
		select {
		case e := <-lines:
			if string(e.Type) != want || e.Name != "follow-me" {
				t.Fatalf("followed event %+v, want %s", e, want)
			}
			if want == "deleted" && e.Reason != meshapi.ReasonLogout {
				t.Fatalf("reason %s", e.Reason)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("events --follow printed no %s event", want)
		}
	}
}

// TestAdminOverHTTPSWithToken serves TLS and drives the CLI with --server,
// the token from the environment and the test's own CA.
func TestAdminOverHTTPSWithToken(t *testing.T) {
	harness.Integration(t)
	dir := t.TempDir()
	ca := testcert.NewCA(t, "meshcoord test CA")
	cert := ca.Issue(t, net.ParseIP("127.0.0.1"))
	certFile := testcert.WriteFile(t, dir, "cert.pem", cert.CertPEM, 0o600)
	keyFile := testcert.WriteFile(t, dir, "key.pem", cert.KeyPEM, 0o600)
	caFile := testcert.WriteFile(t, dir, "ca.pem", ca.PEM, 0o600)
	const token = "integration-admin-token"
	c := coordtest.Start(t, coordtest.Options{
		Args: []string{"--tls-cert", certFile, "--tls-key", keyFile},
		Env:  []string{"MESHCOORD_ADMIN_TOKEN=" + token},
	})
	if !strings.HasPrefix(c.URL, "https://") {
		t.Fatalf("URL %s is not https", c.URL)
	}
	p := &coordtestProbe{bin: c.Binary, env: []string{"MESHCOORD_SERVER=" + c.URL, "MESHCOORD_TLS_CA=" + caFile,
		"MESHCOORD_ADMIN_TOKEN=" + token, "MESHCOORD_ADMIN_SOCKET=/nonexistent"}}
	out, code := p.run(t, "keys", "create", "--json")
	var k meshapi.KeyCreateResponse
	if code != 0 || json.Unmarshal([]byte(out), &k) != nil || k.Key == "" {
		t.Fatalf("keys create over https: exit %d %q", code, out)
	}
	// A node registers over HTTPS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	body := `{"auth_key":"` + k.Key + `","hostname":"tls","public_key":"` + randomPub() + `"}`
	resp, err := hc.Post(c.URL+meshapi.PathRegister, "application/json", strings.NewReader(body))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("register over https: %v %v", err, resp)
	}
	resp.Body.Close()
	// Wrong token, and no token: refused with a message.
	p.env = append(p.env, "MESHCOORD_ADMIN_TOKEN=wrong")
	if out, code := p.run(t, "nodes", "list"); code != 1 || !strings.Contains(out, "wrong admin token") {
		t.Fatalf("wrong token: exit %d %q", code, out)
	}
	p.env = append(p.env, "MESHCOORD_ADMIN_TOKEN=")
	if out, code := p.run(t, "nodes", "list"); code != 1 || !strings.Contains(out, "MESHCOORD_ADMIN_TOKEN") {
		t.Fatalf("no token: exit %d %q", code, out)
	}
}

func randomPub() string {
	var k meshapi.Key
	rand.Read(k[:])
	return k.String()
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, b)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
