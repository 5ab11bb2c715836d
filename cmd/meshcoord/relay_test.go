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
