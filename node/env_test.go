package node

import (
	"slices"
	"strings"
	"testing"
)

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; dup {
			panic("duplicate " + k)
		}
		m[k] = v
	}
	return m
}

func TestChildEnvWithProxy(t *testing.T) {
	env := envMap(childEnv("web.mesh.internal.", "100.64.0.2", "fd7a::2", "127.0.0.1:1055", ",corp.test, localhost,"))
	want := map[string]string{
		"MESH_NAME": "web.mesh.internal", "MESH_IPV4": "100.64.0.2", "MESH_IPV6": "fd7a::2",
		"ALL_PROXY": "socks5h://127.0.0.1:1055", "all_proxy": "socks5h://127.0.0.1:1055",
		"HTTP_PROXY": "http://127.0.0.1:1055", "http_proxy": "http://127.0.0.1:1055",
		"HTTPS_PROXY": "http://127.0.0.1:1055", "https_proxy": "http://127.0.0.1:1055",
		"NO_PROXY": "localhost,127.0.0.1,::1,corp.test", "no_proxy": "localhost,127.0.0.1,::1,corp.test",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if len(env) != len(want) {
		t.Errorf("unexpected variables: %v", env)
	}
	if _, ok := env["MESH_AUTHKEY"]; ok {
		t.Error("MESH_AUTHKEY in the child's environment")
	}
}

func TestChildEnvProxyOff(t *testing.T) {
	env := childEnv("db.mesh.internal", "100.64.0.3", "invalid IP", "", "")
	if !slices.Equal(env, []string{"MESH_NAME=db.mesh.internal", "MESH_IPV4=100.64.0.3"}) {
		t.Errorf("env = %v", env)
	}
}

func TestParseForward(t *testing.T) {
	cases := map[string]string{"all": "all", "ALL": "all", "": "none", "off": "none", "443, 80,80": "80,443", " 80, 443,80 ": "80,443"}
	for in, want := range cases {
		f, err := ParseForward(in)
		if err != nil || f.String() != want {
			t.Errorf("ParseForward(%q) = %v, %v; want %s", in, f, err, want)
		}
	}
	for _, in := range []string{"0", "65536", "http", "80,,443", "-1", "80,", "80;443"} {
		if _, err := ParseForward(in); err == nil {
			t.Errorf("ParseForward(%q) accepted", in)
		} else if !strings.Contains(err.Error(), "all") {
			t.Errorf("error for %q does not say what is accepted: %v", in, err)
		}
	}
}

func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"all", "80,443", "", "1,65535", "x", " 22 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fw, err := ParseForward(s)
		if err != nil {
			return
		}
		if !fw.All && fw.Enabled() && !slices.IsSorted(fw.Ports) {
			t.Fatalf("ports not sorted: %v", fw.Ports)
		}
		if slices.Contains(fw.Ports, 0) {
			t.Fatalf("port 0 accepted from %q", s)
		}
		if fw.All && !strings.EqualFold(strings.TrimSpace(s), "all") {
			t.Fatalf("%q means all ports", s)
		}
	})
}
