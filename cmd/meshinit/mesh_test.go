package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshinit/meshinit/internal/testcert"
)

func testOptions() *options {
	return &options{
		coordinator: "http://127.0.0.1:1", hostname: "h", netMode: "userspace", proxy: "127.0.0.1:0",
		log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestAuthKeyFromFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	o := testOptions()
	o.authKeyFile = write("key", "  mkey-abc\n")
	if k, err := authKey(o); err != nil || k != "mkey-abc" {
		t.Fatalf("authKey from a file = %q, %v", k, err)
	}
	o.authKey = "mkey-env"
	if _, err := authKey(o); err == nil || !strings.Contains(err.Error(), "only one") {
		t.Fatalf("both set: %v", err)
	}
	o.authKey = ""
	o.authKeyFile = write("empty", "\n")
	if _, err := authKey(o); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
	o.authKeyFile = write("big", strings.Repeat("k", maxAuthKeyFile+1))
	if _, err := authKey(o); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("huge file: %v", err)
	}
	o.authKeyFile = filepath.Join(dir, "missing")
	if _, err := authKey(o); err == nil || !strings.Contains(err.Error(), "MESH_AUTHKEY_FILE") {
		t.Fatalf("missing file: %v", err)
	}
	// A directory where the secret file was expected (a mount gone wrong)
	// is a read error, not an "empty" key file.
	o.authKeyFile = dir
	if _, err := authKey(o); err == nil || !strings.Contains(err.Error(), "is a directory") || strings.Contains(err.Error(), "empty") {
		t.Fatalf("directory: %v", err)
	}
}

func TestNewMeshRejectsBadSettingsBeforeTheNetwork(t *testing.T) {
	cases := map[string]func(*options){
		"MESH_COORDINATOR": func(o *options) { o.coordinator = "" },
		"MESH_FORWARD":     func(o *options) { o.forward = "http" },
		"MESH_NET":         func(o *options) { o.netMode = "wifi" },
		// a key where the CA certificate should be: no PEM certificate
		"MESH_COORDINATOR_CA": func(o *options) {
			o.coordinator = "https://127.0.0.1:8480"
			o.coordinatorCA = filepath.Join(t.TempDir(), "ca.pem")
			os.WriteFile(o.coordinatorCA, []byte("-----BEGIN EC PRIVATE KEY-----\n-----END EC PRIVATE KEY-----\n"), 0o600)
		},
	}
	for want, mutate := range cases {
		o := testOptions()
		o.authKey = "mkey-secret-value"
		mutate(o)
		_, err := newMesh(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err=%v", want, err)
		}
		if err != nil && strings.Contains(err.Error(), "mkey-secret-value") {
			t.Errorf("%s: the error quotes the key", want)
		}
	}
	o := testOptions()
	o.authKey = "k"
	o.hostname = ""
	m, err := newMesh(o)
	if err != nil || m.hooks().Prepare == nil || m.hooks().BeforeExit == nil {
		t.Fatalf("good settings, hostname from the system: %v", err)
	}
	o.coordinator = "https://127.0.0.1:8480"
	o.coordinatorCA = testcert.WriteFile(t, t.TempDir(), "ca.pem", testcert.NewCA(t, "test CA").PEM, 0o644)
	if _, err := newMesh(o); err != nil {
		t.Fatalf("good settings with a coordinator CA: %v", err)
	}
}
