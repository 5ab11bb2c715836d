package coordinator

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

func TestKeyKinds(t *testing.T) {
	e := newEnv(t, Config{})

	oneOff := e.createKey(meshapi.KeyCreateRequest{Description: "one"})
	if !strings.HasPrefix(oneOff.Key, "mkey-"+oneOff.ID+"-") || oneOff.State != meshapi.KeyValid {
		t.Fatalf("created key %+v", oneOff)
	}
	a := e.register(oneOff.Key, "a")
	if a.reg.Node.Ephemeral || a.reg.Node.KeyID != oneOff.ID {
		t.Fatalf("node of a plain key: %+v", a.reg.Node)
	}
	_, status, er := e.tryRegister(oneOff.Key, "b")
	if status != http.StatusUnauthorized || er.Code != meshapi.ErrKeyUsed || !strings.Contains(er.Message, "one-off") {
		t.Fatalf("second use of a one-off key: %d %+v", status, er)
	}

	reusable := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	for _, h := range []string{"r1", "r2", "r3"} {
		e.register(reusable.Key, h)
	}

	eph := e.createKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true, Tags: []string{"tag:ci", "tag:web"},
		EphemeralTimeout: meshapi.Duration(90 * time.Second)})
	n := e.register(eph.Key, "eph")
	if !n.reg.Node.Ephemeral || strings.Join(n.reg.Node.Tags, ",") != "tag:ci,tag:web" {
		t.Fatalf("node of an ephemeral tagged key: %+v", n.reg.Node)
	}
	// The key's own timeout counts from registration.
	if d := n.reg.Node.GCDeadline.Sub(n.reg.Node.Created); d != 90*time.Second {
		t.Fatalf("GC deadline is %v after creation, want the key's 90s", d)
	}

	keys, err := e.ac.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]meshapi.KeyState{}
	uses := map[string]int{}
	for _, k := range keys {
		states[k.ID], uses[k.ID] = k.State, k.Uses
	}
	if states[oneOff.ID] != meshapi.KeyUsed || uses[reusable.ID] != 3 || states[reusable.ID] != meshapi.KeyValid || uses[eph.ID] != 1 {
		t.Fatalf("key states %v uses %v", states, uses)
	}
}

func TestKeyRefusals(t *testing.T) {
	e := newEnv(t, Config{})
	expired := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Expiry: meshapi.Duration(time.Nanosecond)})
	e.advance(time.Nanosecond) // it expires
	revoked := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	if _, err := e.ac.RevokeKey(context.Background(), revoked.ID); err != nil {
		t.Fatal(err)
	}
	good := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	wrongSecret := good.Key[:len(good.Key)-1] + string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", good.Key[len(good.Key)-1])+1)%16])

	for name, tc := range map[string]struct {
		key  string
		code meshapi.ErrorCode
		says string
	}{
		"expired":      {expired.Key, meshapi.ErrKeyExpired, "expired"},
		"revoked":      {revoked.Key, meshapi.ErrKeyRevoked, "revoked"},
		"wrong secret": {wrongSecret, meshapi.ErrKeyInvalid, "not known"},
		"unknown id":   {"mkey-0000000000000000-" + strings.Repeat("ab", 32), meshapi.ErrKeyInvalid, "not known"},
		"malformed":    {"tskey-auth-xyz", meshapi.ErrKeyInvalid, "must start with"},
		"empty":        {"", meshapi.ErrKeyInvalid, "empty"},
	} {
		_, status, er := e.tryRegister(tc.key, "x")
		if status != http.StatusUnauthorized || er.Code != tc.code || !strings.Contains(er.Message, tc.says) {
			t.Errorf("%s: HTTP %d %+v; want 401 %s saying %q", name, status, er, tc.code, tc.says)
		}
		if len(tc.key) > 30 && strings.Contains(er.Message, tc.key[len(tc.key)-20:]) {
			t.Errorf("%s: the error repeats the key's secret: %q", name, er.Message)
		}
	}
	// Refusals consume nothing: the good key still works, and the first
	// node gets the first address and the plain name.
	n := e.register(good.Key, "x")
	if n.reg.Node.Name != "x" || n.reg.Node.IPv4.String() != "100.64.0.1" {
		t.Fatalf("after refusals the first node is %s %s: something leaked", n.reg.Node.Name, n.reg.Node.IPv4)
	}
	// Revoking is idempotent and keeps the first revocation time.
	k1, _ := e.ac.RevokeKey(context.Background(), revoked.ID)
	k2, _ := e.ac.RevokeKey(context.Background(), revoked.ID)
	if !k1.Revoked.Equal(k2.Revoked) || k1.State != meshapi.KeyRevoked {
		t.Fatalf("revoke twice: %+v then %+v", k1, k2)
	}
	if _, err := e.ac.RevokeKey(context.Background(), "ffffffffffffffff"); !isCode(err, meshapi.ErrNotFound) {
		t.Fatalf("revoking an unknown key: %v", err)
	}
}

func TestKeyCreateValidation(t *testing.T) {
	e := newEnv(t, Config{})
	for name, req := range map[string]meshapi.KeyCreateRequest{
		"bad tag":               {Tags: []string{"ci"}},
		"bad tag name":          {Tags: []string{"tag:Has Space"}},
		"timeout not ephemeral": {EphemeralTimeout: meshapi.Duration(time.Minute)},
		"timeout too short":     {Ephemeral: true, EphemeralTimeout: meshapi.Duration(time.Millisecond)},
		"long description":      {Description: strings.Repeat("x", 300)},
	} {
		if _, err := e.ac.CreateKey(context.Background(), req); !isCode(err, meshapi.ErrInvalidRequest) {
			t.Errorf("%s: %v, want invalid_request", name, err)
		}
	}
	status, er := do(t, "POST", e.admin.URL+meshapi.PathAdminKeys, "", []byte(`{"ephemeral":true,"bogus":1}`), nil)
	if status != http.StatusBadRequest || !strings.Contains(er.Message, "bogus") {
		t.Fatalf("unknown field: %d %+v", status, er)
	}
}

func TestKeysSurviveRestartHashedOnly(t *testing.T) {
	e := newEnv(t, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true})
	e.restart()
	e.register(k.Key, "after-restart")
	raw := readFile(t, e.db)
	secret := k.Key[len("mkey-")+16+1:]
	if strings.Contains(raw, secret) {
		t.Fatal("the database holds the key's secret in clear")
	}
}

func isCode(err error, code meshapi.ErrorCode) bool {
	e, ok := err.(*meshapi.Error)
	return ok && e.Code == code
}
