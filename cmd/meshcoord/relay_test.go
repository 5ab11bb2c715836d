package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A --replica-ca that holds no certificate stops the start with a message
// that names the flag, instead of every replica link failing later with
// "unknown authority".
func TestServeRefusesAReplicaCAWithoutCertificates(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600)
	for _, path := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		stderr, err := os.CreateTemp(dir, "stderr")
		if err != nil {
			t.Fatal(err)
		}
		code := run([]string{"meshcoord", "serve", "--listen", "127.0.0.1:0", "--db", filepath.Join(dir, "coord.db"),
			"--admin-socket", filepath.Join(dir, "admin.sock"), "--replica-ca", path}, os.Stdout, stderr)
		out, _ := os.ReadFile(stderr.Name())
		if code != 1 || !strings.Contains(string(out), "--replica-ca "+path) {
			t.Errorf("--replica-ca %s: exit %d, stderr:\n%s", path, code, out)
		}
	}
}

// A replica that listens on every interface records no address the other
// replicas can dial: on PostgreSQL the start stops and asks for
// --replica-url, before touching the database (none runs here, so getting
// past the check would fail differently). A malformed --replica-url is
// refused the same way.
func TestServeWantsAReplicaURLItsPeersCanDial(t *testing.T) {
	dir := t.TempDir()
	pg := "postgres://meshinit@127.0.0.1:1/nowhere?connect_timeout=1"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--listen", "0.0.0.0:0", "--db", pg}, "--replica-url"},
		{[]string{"--listen", "[::]:0", "--db", pg}, "--replica-url"},
		{[]string{"--listen", "127.0.0.1:0", "--db", pg, "--replica-url", "10.0.0.5:8480"}, `--replica-url "10.0.0.5:8480"`},
	}
	for _, tc := range cases {
		stderr, err := os.CreateTemp(dir, "stderr")
		if err != nil {
			t.Fatal(err)
		}
		args := append([]string{"meshcoord", "serve", "--admin-socket", filepath.Join(dir, "admin.sock")}, tc.args...)
		code := run(args, os.Stdout, stderr)
		out, _ := os.ReadFile(stderr.Name())
		if code != 1 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s", tc.args, code, out)
		}
	}
}
