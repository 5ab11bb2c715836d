package coordinator

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/meshinit/meshinit/coordinator/names"

	"github.com/meshinit/meshinit/meshapi"
)

// Every decoder of untrusted input is fuzzed through its real handler: any
// body must get a 2xx or a 4xx with an ErrorBody, never a panic or a 5xx.
// In bodies, $KEY and $SECRET stand for a valid auth key and node secret,
// so the fuzzer reaches past authentication.

type fuzzEnv struct {
	*env
	key    string
	secret string
	node   meshapi.NodeID
}

func getFuzzEnv(f *testing.F) *fuzzEnv {
	// One server for the whole fuzz run (per target), on a real SQLite file.
	e := newEnv(f, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	n := e.register(k.Key, "fuzz")
	return &fuzzEnv{env: e, key: k.Key, secret: n.reg.Secret, node: n.id()}
}

func (fe *fuzzEnv) send(t *testing.T, h http.Handler, method, path string, body []byte, auth bool) {
	b := bytes.ReplaceAll(body, []byte("$KEY"), []byte(fe.key))
	b = bytes.ReplaceAll(b, []byte("$SECRET"), []byte(fe.secret))
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	if auth {
		req.Header.Set("Authorization", "Bearer "+fe.secret)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: HTTP %d %s", method, path, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 {
		var eb meshapi.ErrorBody
		if err := meshapi.DecodeBytes(rec.Body.Bytes(), &eb); err != nil || eb.Error.Code == "" || eb.Error.Message == "" {
			t.Fatalf("%s %s %q: HTTP %d with body %q, not an ErrorBody", method, path, body, rec.Code, rec.Body)
		}
	}
}

func FuzzRegisterBody(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{
		`{"auth_key":"$KEY","hostname":"web","public_key":"` + randomKey().String() + `"}`,
		`{"auth_key":"$KEY","hostname":"Web_Server.local","public_key":"` + randomKey().String() + `","endpoints":["127.0.0.1:41641","[::1]:1"]}`,
		`{"auth_key":"$KEY","hostname":"","public_key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`,
		`{"auth_key":"mkey-0123456789abcdef-00","hostname":"x"}`,
		`{"auth_key":1}`, `[]`, `null`, `{}`, ``, `{"auth_key":"$KEY"} {}`, `{"endpoints":["0.0.0.0:0"]}`,
		`{"auth_key":"$KEY","hostname":"\u00ff\u0000","public_key":"` + randomKey().String() + `","extra":true}`,
		`{"auth_key":"$KEY","hostname":"web","public_key":"` + randomKey().String() + `","secret":"` + meshapi.NewNodeSecret() + `"}`,
		`{"auth_key":"$KEY","hostname":"web","public_key":"` + randomKey().String() + `","secret":"$SECRET"}`,
		`{"auth_key":"$KEY","hostname":"web","public_key":"` + randomKey().String() + `","secret":"mnode-XYZ"}`,
		`{"auth_key":"$KEY","hostname":"v4","public_key":"` + randomKey().String() + `","no_ipv6":true}`,
		`{"auth_key":"$KEY","hostname":"v4","public_key":"` + randomKey().String() + `","no_ipv6":false,"secret":"$SECRET"}`,
		`{"auth_key":"$KEY","hostname":"v4","public_key":"` + randomKey().String() + `","no_ipv6":"yes"}`,
		`{"auth_key":"$KEY","no_ipv6":null}`,
	} {
		f.Add([]byte(s))
	}
	h := fe.s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		fe.send(t, h, "POST", meshapi.PathRegister, body, false)
	})
}

func FuzzEndpointsBody(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{
		`{"endpoints":["127.0.0.1:41641"]}`, `{"endpoints":[]}`, `{"endpoints":null}`,
		`{"endpoints":["[fe80::1%eth0]:1"]}`, `{"endpoints":["1.2.3.4"]}`, `{"endpoints":"x"}`,
		`{"endpoints":["127.0.0.1:1","127.0.0.1:2","127.0.0.1:3","127.0.0.1:4","127.0.0.1:5","127.0.0.1:6","127.0.0.1:7","127.0.0.1:8","127.0.0.1:9","127.0.0.1:10","127.0.0.1:11","127.0.0.1:12","127.0.0.1:13","127.0.0.1:14","127.0.0.1:15","127.0.0.1:16","127.0.0.1:17"]}`,
	} {
		f.Add([]byte(s))
	}
	h := fe.s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		fe.send(t, h, "POST", meshapi.PathEndpoints, body, true)
	})
}

func FuzzLogoutBody(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{`{"node_id":12345}`, `{"node_id":"1"}`, `  `, `{}`, `{"x":1}`} {
		f.Add([]byte(s))
	}
	h := fe.s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		// Bodies that would really log the node out are skipped: the
		// target is the decoder, and the node must stay for the next input.
		var req meshapi.LogoutRequest
		if len(bytes.TrimSpace(body)) == 0 || (meshapi.DecodeBytes(body, &req) == nil && (req.NodeID == 0 || req.NodeID == fe.node)) {
			return
		}
		fe.send(t, h, "POST", meshapi.PathLogout, body, true)
	})
}

func FuzzKeyCreateBody(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{
		`{"ephemeral":true,"reusable":true,"tags":["tag:ci"],"expiry":"24h","ephemeral_timeout":"2m","description":"ci"}`,
		`{"expiry":3600}`, `{"expiry":"-1s"}`, `{"expiry":1e300}`, `{"ephemeral_timeout":"1m"}`,
		`{"tags":["tag:"]}`, `{"description":"` + strings.Repeat("é", 200) + `"}`, `{"reusable":"yes"}`,
	} {
		f.Add([]byte(s))
	}
	h := fe.s.AdminHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		fe.send(t, h, "POST", meshapi.PathAdminKeys, body, false)
	})
}

func FuzzRenameBody(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{`{"name":"fuzz"}`, `{"name":"Bad Name"}`, `{"name":""}`, `{"name":"` + strings.Repeat("a", 64) + `"}`, `{"name":null}`} {
		f.Add([]byte(s))
	}
	h := fe.s.AdminHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		// Keep the node's name stable for the next input.
		var req meshapi.RenameRequest
		if meshapi.DecodeBytes(body, &req) == nil && req.Name != "fuzz" && names.Valid(req.Name) {
			return
		}
		fe.send(t, h, "POST", meshapi.PathAdminNodes+"/fuzz/rename", body, false)
	})
}

func FuzzMapQuery(f *testing.F) {
	fe := getFuzzEnv(f)
	for _, s := range []string{"since=abc", "since=-1", "since=18446744073709551616", "follow=2"} {
		f.Add(s)
	}
	h := fe.s.Handler()
	f.Fuzz(func(t *testing.T, q string) {
		// Only queries that fail fast: a valid one would open a stream.
		req := httptest.NewRequest("GET", "/v1/map", nil)
		req.URL.RawQuery = q
		since := req.URL.Query().Get("since")
		if _, err := strconv.ParseUint(since, 10, 64); since == "" || err == nil {
			return
		}
		enc := req.URL.Query().Encode() // what a client can send on the wire
		fe.send(t, h, "GET", meshapi.PathMap+"?"+enc, nil, true)
		fe.send(t, fe.s.AdminHandler(), "GET", meshapi.PathAdminEvents+"?"+enc, nil, false)
	})
}
