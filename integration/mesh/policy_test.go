package mesh

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// The policy of the end-to-end tests: ci reaches db's port 5432 and web's
// 8080; nobody else reaches anything.
const e2ePolicy = `{
  "grants": [
    {"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
    {"src": ["tag:ci"], "dst": ["tag:web"], "ip": ["tcp:8080", "icmp"]},
  ],
  "tests": [
    {"src": "tag:ci", "accept": ["tag:db:5432", "tag:web:8080"], "deny": ["tag:db:2222", "tag:web:5432"]},
  ],
}
`

// Every node serves on 5432 and 2222 (and web also on 8080), so each
// refusal below is the policy's, not a closed port's.
func servers(t *testing.T, bind string, extra ...string) []string {
	d := demo(t)
	script := `"$0" serve -listen ` + bind + `:5432 -message five & "$0" serve -listen ` + bind + `:2222 -message two & `
	for _, p := range extra {
		script += `"$0" serve -listen ` + bind + `:` + p + ` -message web & `
	}
	return []string{"sh", "-c", script + `wait`, d}
}

// Real meshinit nodes with keys tagged ci, db and web plus an untagged
// one, under a policy given with serve --policy, in userspace and TUN
// mode: allowed connections work; a denied port, the reverse direction,
// an untagged node and meshinit's own ports are refused at once; a third
// node's map lacks the nodes it may not reach; a policy change at runtime
// (SIGHUP) applies to new connections within 1 s; a policy whose tests
// fail is refused and the one in force stays.
func TestPolicyBetweenTaggedNodes(t *testing.T) {
	for _, mode := range []string{"userspace", "tun"} {
		t.Run(mode, func(t *testing.T) { testPolicy(t, mode) })
	}
}

func testPolicy(t *testing.T, mode string) {
	harness.Integration(t)
	policyFile := filepath.Join(t.TempDir(), "policy.hujson")
	if err := os.WriteFile(policyFile, []byte(e2ePolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	c := coordtest.Start(t, coordtest.Options{Args: []string{"--policy", policyFile}})
	keys := map[string]string{}
	for _, tag := range []string{"ci", "db", "web"} {
		keys[tag] = c.CreateKey(t, "--ephemeral", "--reusable", "--tag", "tag:"+tag)
	}
	keys["plain"] = c.CreateKey(t, "--ephemeral", "--reusable")
	l := newLAN(t)
	coordURL := "http://" + l.relayIntoHub(c.Addr)

	bind, env := "127.0.0.1", []string{"MESH_PROXY=127.0.0.1:1055", "MESH_HEALTH_ADDR=127.0.0.1:9090"}
	if mode == "tun" {
		bind, env = "0.0.0.0", []string{"MESH_NET=tun", "MESH_HEALTH_ADDR=0.0.0.0:9090"}
	}
	type host struct {
		m  *meshinit
		ns string
		st ctlsock.Status
	}
	hosts := map[string]*host{}
	for _, name := range []string{"db", "web", "ci", "plain"} {
		ns, _ := l.addHost()
		var extra []string
		if name == "web" {
			extra = []string{"8080"}
		}
		m := startMeshinit(t, nodeSpec{coord: coordURL, key: keys[name], hostname: name, netns: ns, env: env,
			command: servers(t, bind, extra...)})
		hosts[name] = &host{m: m, ns: ns, st: m.waitUp()}
		m.waitOutput("serving on")
	}
	// dial connects from a node's namespace to a mesh address: through the
	// node's proxy in userspace mode, directly in TUN mode.
	dial := func(from, to string, port string) (string, error) {
		target := net.JoinHostPort(hosts[to].st.IPv4.String(), port)
		if mode == "tun" {
			resp, err := httpClientInNetns(hosts[from].ns).Get("http://" + target + "/")
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			return resp.Status, nil
		}
		return viaProxyGet(hosts[from].ns, "http://"+target+"/")
	}
	allowed := func(from, to, port string, within time.Duration) {
		t.Helper()
		harness.Eventually(t, within, from+" → "+to+":"+port+" allowed", func() (bool, string) {
			out, err := dial(from, to, port)
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(out, "200"), out
		})
	}
	refused := func(from, to, port string) {
		t.Helper()
		begin := time.Now()
		out, err := dial(from, to, port)
		took := time.Since(begin)
		if err == nil {
			t.Errorf("%s → %s:%s answered %q, want refused", from, to, port, out)
		} else if took > refusedWithin {
			t.Errorf("%s → %s:%s refused only after %v: %v", from, to, port, took, err)
		} else {
			t.Logf("%s → %s:%s refused after %v: %v", from, to, port, took.Round(time.Millisecond), err)
		}
	}

	allowed("ci", "db", "5432", waitLimit)
	allowed("ci", "web", "8080", waitLimit)
	refused("ci", "db", "2222")    // a denied port
	refused("db", "ci", "5432")    // the reverse direction
	refused("plain", "db", "5432") // an untagged node (db is not in its map)
	refused("ci", "db", "9090")    // meshinit's health port
	if mode == "userspace" {
		refused("ci", "db", "1055") // meshinit's proxy
	}

	// Maps are trimmed: plain sees nobody, web sees only ci, ci sees both.
	peers := func(name string) []string {
		st, err := hosts[name].m.status()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range st.Peers {
			out = append(out, p.Name)
		}
		slices.Sort(out)
		return out
	}
	for name, want := range map[string][]string{"plain": nil, "web": {"ci"}, "db": {"ci"}, "ci": {"db", "web"}} {
		if got := peers(name); !slices.Equal(got, want) {
			t.Errorf("%s's map: %v, want %v", name, got, want)
		}
	}
	st, _ := hosts["db"].m.status()
	if st.Policy.Version == 0 || !st.Policy.Enforcing || st.Policy.Drops["policy"] == 0 || st.Policy.Drops["own_listener"] == 0 {
		t.Errorf("db's policy status: %+v", st.Policy)
	}
	version := st.Policy.Version

	// A failing test: refused, the policy in force stays.
	failing := strings.Replace(e2ePolicy, `"deny": ["tag:db:2222"`, `"deny": ["tag:db:5432"`, 1)
	bad := filepath.Join(t.TempDir(), "bad.hujson")
	os.WriteFile(bad, []byte(failing), 0o644)
	if _, stderr, err := c.TryCLI("policy", "set", bad); err == nil || !strings.Contains(string(stderr), "test failed") {
		t.Errorf("policy set with a failing test: %v\n%s", err, stderr)
	}

	// At runtime (SIGHUP on a changed file): db may now reach ci on 5432,
	// and ci loses db's 5432. Applies to new connections within 1 s.
	changed := strings.Replace(e2ePolicy, `{"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432"]},`,
		`{"src": ["tag:db"], "dst": ["tag:ci"], "ip": ["tcp:5432"]},`, 1)
	changed = strings.Replace(changed, `"accept": ["tag:db:5432", "tag:web:8080"], "deny": ["tag:db:2222",`, `"accept": ["tag:web:8080"], "deny": ["tag:db:2222",`, 1)
	if err := os.WriteFile(policyFile, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(c.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	allowed("db", "ci", "5432", time.Second)
	harness.Eventually(t, time.Second-time.Since(begin), "ci → db:5432 refused after the change", func() (bool, string) {
		out, err := dial("ci", "db", "5432")
		return err != nil, out
	})
	t.Logf("policy change applied to new connections after %v", time.Since(begin))
	if st, _ := hosts["db"].m.status(); st.Policy.Version != version+1 {
		t.Errorf("db's policy version %d after the change, want %d", st.Policy.Version, version+1)
	}
}
