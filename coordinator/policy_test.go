package coordinator

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

const ciDBPolicy = `{
  // ci reaches db; web is alone
  "grants": [{"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432"]},],
  "tests": [{"src": "tag:ci", "accept": ["tag:db:5432"], "deny": ["tag:db:22"]}],
}`

func peerIDs(m meshapi.MapMessage) []meshapi.NodeID {
	var ids []meshapi.NodeID
	for _, p := range m.Peers {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

func (e *env) tagged(tag string) string {
	return e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true, Tags: []string{tag}}).Key
}

// A policy trims every node's map to the peers it may reach or be reached
// by; a change sends each node one policy line with its new rules and the
// peers it gains and loses, never a full map; the policy survives a
// restart.
func TestPolicyTrimsMapsAndSendsDeltas(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	ci := e.register(e.tagged("tag:ci"), "ci")
	db := e.register(e.tagged("tag:db"), "db")
	web := e.register(e.tagged("tag:web"), "web")
	other := e.register(e.createKey(meshapi.KeyCreateRequest{}).Key, "plain")

	if _, err := e.ac.SetPolicy(ctx, []byte(ciDBPolicy)); err != nil {
		t.Fatal(err)
	}
	want := map[*client][]meshapi.NodeID{ci: {db.id()}, db: {ci.id()}, web: nil, other: nil}
	streams := map[*client]*mapStream{}
	for c, ids := range want {
		ms := c.connect("")
		streams[c] = ms
		full := ms.nextChange(5 * time.Second)
		if full.Type != meshapi.MsgFull || !slices.Equal(peerIDs(full), ids) {
			t.Errorf("%s: full map peers %v, want %v", c.reg.Node.Name, peerIDs(full), ids)
		}
		if full.Policy == nil || full.Policy.Version != 1 {
			t.Fatalf("%s: full map policy %+v", c.reg.Node.Name, full.Policy)
		}
	}
	// Widen: web may reach ci. web gains ci, ci gains web; db and plain
	// get their new version with no peer change.
	wider := strings.Replace(ciDBPolicy, `"grants": [`, `"grants": [{"src": ["tag:web"], "dst": ["tag:ci"], "ip": ["*"]},`, 1)
	if _, err := e.ac.SetPolicy(ctx, []byte(wider)); err != nil {
		t.Fatal(err)
	}
	expect := map[*client]struct {
		gained  []meshapi.NodeID
		removed []meshapi.NodeID
		rules   int
	}{
		ci:    {[]meshapi.NodeID{web.id()}, nil, 1},
		db:    {nil, nil, 1},
		web:   {[]meshapi.NodeID{ci.id()}, nil, 0},
		other: {nil, nil, 0},
	}
	for c, x := range expect {
		var m meshapi.MapMessage
		for m = streams[c].nextChange(5 * time.Second); m.Type == meshapi.MsgPresence || m.Type == meshapi.MsgUpsert; m = streams[c].nextChange(5 * time.Second) {
		}
		if m.Type != meshapi.MsgPolicy || m.Policy == nil || m.Policy.Version != 2 {
			t.Fatalf("%s: got %+v, want a policy message at version 2", c.reg.Node.Name, m)
		}
		if !slices.Equal(peerIDs(m), x.gained) || !slices.Equal(m.Removed, x.removed) || len(m.Policy.Rules) != x.rules {
			t.Errorf("%s: gained %v removed %v rules %d, want %v %v %d", c.reg.Node.Name, peerIDs(m), m.Removed, len(m.Policy.Rules), x.gained, x.removed, x.rules)
		}
	}

	// Clearing the policy: everyone sees everyone, and the policy is gone.
	if _, err := e.ac.ClearPolicy(ctx); err != nil {
		t.Fatal(err)
	}
	var m meshapi.MapMessage
	for m = streams[other].nextChange(5 * time.Second); m.Type != meshapi.MsgPolicy; m = streams[other].nextChange(5 * time.Second) {
	}
	if m.Policy != nil || !slices.Equal(peerIDs(m), []meshapi.NodeID{ci.id(), db.id(), web.id()}) {
		t.Errorf("after clear: %+v", m)
	}

	// Back to the narrow policy, then restart: it is still in force.
	if _, err := e.ac.SetPolicy(ctx, []byte(ciDBPolicy)); err != nil {
		t.Fatal(err)
	}
	for _, ms := range streams {
		ms.close()
	}
	e.restart()
	got, err := e.ac.Policy(ctx)
	if err != nil || got.Version != 4 || got.Source != ciDBPolicy {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
	ms := web.connect("")
	if full := ms.nextChange(5 * time.Second); full.Type != meshapi.MsgFull || len(full.Peers) != 0 || full.Policy == nil || full.Policy.Version != 4 {
		t.Errorf("web after restart: %+v", full)
	}
}

// A node registering under a policy is announced only to the nodes that
// may see it.
func TestNewNodeIsAnnouncedOnlyWhereVisible(t *testing.T) {
	e := newEnv(t, Config{KeepaliveInterval: 100 * time.Millisecond})
	if _, err := e.ac.SetPolicy(context.Background(), []byte(ciDBPolicy)); err != nil {
		t.Fatal(err)
	}
	dbKey, webKey := e.tagged("tag:db"), e.tagged("tag:web")
	db, web := e.register(dbKey, "db"), e.register(webKey, "web")
	dbs, webs := db.connect(""), web.connect("")
	dbs.nextChange(5 * time.Second)
	webs.nextChange(5 * time.Second)
	ci := e.register(e.tagged("tag:ci"), "ci")
	m := dbs.nextChange(5 * time.Second)
	if m.Type != meshapi.MsgUpsert || m.Peers[0].ID != ci.id() || m.Peers[0].Tags[0] != "tag:ci" {
		t.Fatalf("db: %+v", m)
	}
	// web reads past that version (a keepalive carries the last version
	// its stream went over) without a word about ci.
	for {
		w := webs.next(5 * time.Second)
		if w.Type != meshapi.MsgKeepalive {
			t.Fatalf("web was told: %+v", w)
		}
		if w.Version >= m.Version {
			break
		}
	}
}

// A policy whose tests fail, or that does not parse, is refused with the
// line; the policy in force stays.
func TestBadPolicyIsRefusedWithItsLine(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	if _, err := e.ac.SetPolicy(ctx, []byte(ciDBPolicy)); err != nil {
		t.Fatal(err)
	}
	failing := strings.Replace(ciDBPolicy, `"deny": ["tag:db:22"]`, `"deny": ["tag:db:5432"]`, 1)
	_, err := e.ac.SetPolicy(ctx, []byte(failing))
	if err == nil || !strings.Contains(err.Error(), "line 4: test failed") || !strings.Contains(err.Error(), "policy_invalid") {
		t.Errorf("failing test: %v", err)
	}
	_, err = e.ac.SetPolicy(ctx, []byte("{\n\"grants\": [{\"src\": [\"tag:ci\"], \"dst\": [\"*\"], \"ip\": [\"22\"]}]}"))
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad port spec: %v", err)
	}
	if _, err := e.ac.CheckPolicy(ctx, []byte(failing)); err == nil {
		t.Error("check accepted a failing policy")
	}
	if r, err := e.ac.CheckPolicy(ctx, []byte(ciDBPolicy)); err != nil || r.Grants != 1 || r.Tests != 1 {
		t.Errorf("check: %+v %v", r, err)
	}
	if got, _ := e.ac.Policy(ctx); got.Version != 1 || got.Source != ciDBPolicy {
		t.Errorf("policy in force changed: %+v", got)
	}
}
