package dataplane

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCandidates(t *testing.T) {
	good := map[string][]netip.AddrPort{
		"127.0.0.1:51820":                {netip.MustParseAddrPort("127.0.0.1:51820")},
		"198.18.0.1:1,[fd00::1]:2":       {netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("[fd00::1]:2")},
		"[::1]:9,127.0.0.1:9,10.0.0.1:9": {netip.MustParseAddrPort("[::1]:9"), netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("10.0.0.1:9")},
	}
	for in, want := range good {
		got, err := parseCandidates(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseCandidates(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back := formatCandidates(got); back != in {
			t.Errorf("formatCandidates round trip: %q -> %q", in, back)
		}
	}
	bad := []string{"", "127.0.0.1", "127.0.0.1:0", "0.0.0.0:5", "[ff02::1]:5", "[fe80::1%eth0]:5",
		"1.2.3.4:5,1.2.3.4:5", "a:1", strings.Repeat("127.0.0.1:1,", maxCandidates) + "127.0.0.2:1", "127.0.0.1:1,"}
	for _, in := range bad {
		if got, err := parseCandidates(in); err == nil {
			t.Errorf("parseCandidates(%q) = %v, want an error", in, got)
		}
	}
}

func FuzzParseCandidates(f *testing.F) {
	for _, s := range []string{"127.0.0.1:1", "198.18.0.1:1,[fd00::1]:2", "", ",", "[::1]:0", "1.2.3.4:5,1.2.3.4:5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := parseCandidates(s)
		if err != nil {
			return
		}
		if len(addrs) == 0 || len(addrs) > maxCandidates {
			t.Fatalf("%q: %d candidates accepted", s, len(addrs))
		}
		again, err := parseCandidates(formatCandidates(addrs))
		if err != nil || !slices.Equal(again, addrs) {
			t.Fatalf("%q: round trip gave %v, %v", s, again, err)
		}
	})
}

const sampleStatus = `private_key=e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a
listen_port=12912
public_key=b85996fecc9c7f1fc6d2572a76eda11d59bcd20be8e543b15ce4bd85a8e75a33
preshared_key=0000000000000000000000000000000000000000000000000000000000000000
protocol_version=1
endpoint=[abcd:23::33%2]:51820
last_handshake_time_sec=1700000000
last_handshake_time_nsec=5
tx_bytes=38333
rx_bytes=2224
persistent_keepalive_interval=25
allowed_ip=192.168.4.4/32
public_key=58402e695ba1772b1cc9309755f043251ea77fdcf10fbe63989ceb7e19321376
protocol_version=1
endpoint=127.0.0.1:1,127.0.0.1:2
last_handshake_time_sec=0
last_handshake_time_nsec=0
tx_bytes=0
rx_bytes=0
persistent_keepalive_interval=25
allowed_ip=100.64.0.2/32
`

func TestParsePeerStatus(t *testing.T) {
	peers, err := parsePeerStatus(sampleStatus)
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 2 {
		t.Fatalf("%d peers, want 2", len(peers))
	}
	p := peers[0]
	if p.PublicKey[0] != 0xb8 || p.TxBytes != 38333 || p.RxBytes != 2224 || !p.LastHandshake.Equal(time.Unix(1700000000, 5)) {
		t.Errorf("first peer: %+v", p)
	}
	if p.Endpoint.Addr().Zone() != "2" || p.Endpoint.Port() != 51820 {
		t.Errorf("first peer endpoint: %v", p.Endpoint)
	}
	q := peers[1]
	if q.Endpoint.IsValid() || !q.LastHandshake.IsZero() {
		t.Errorf("second peer (candidates, no handshake): endpoint %v, handshake %v; want both zero", q.Endpoint, q.LastHandshake)
	}
	if _, err := parsePeerStatus("public_key=zz\n"); err == nil {
		t.Error("bad key accepted")
	}
	if _, err := parsePeerStatus("public_key=" + strings.Repeat("00", 32) + "\ntx_bytes=-1\n"); err == nil {
		t.Error("negative counter accepted")
	}
}

func FuzzParsePeerStatus(f *testing.F) {
	f.Add(sampleStatus)
	f.Add("public_key=zz\n")
	f.Add("garbage")
	f.Fuzz(func(t *testing.T, s string) {
		peers, _ := parsePeerStatus(s)
		if n := strings.Count(s, "public_key="); len(peers) > n {
			t.Fatalf("%d peers from %d public_key lines", len(peers), n)
		}
	})
}

func TestParseDialAddress(t *testing.T) {
	good := map[string]string{"100.64.0.2:80": "100.64.0.2:80", "[fd7a::2]:443": "[fd7a::2]:443", "[::ffff:100.64.0.2]:80": "100.64.0.2:80"}
	for in, want := range good {
		if got, err := parseDialAddress("tcp", in); err != nil || got.String() != want {
			t.Errorf("parseDialAddress(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, bad := range []string{"web:80", "100.64.0.2", "100.64.0.2:0", "100.64.0.2:http", "[fe80::1%eth0]:80", ""} {
		if got, err := parseDialAddress("tcp", bad); err == nil {
			t.Errorf("parseDialAddress(%q) = %v, want an error", bad, got)
		}
	}
}

func FuzzParseDialAddress(f *testing.F) {
	for _, s := range []string{"100.64.0.2:80", "[fd7a::2]:443", "web:80", ":80", "[::1]:65535"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parseDialAddress("tcp", s)
		if err != nil {
			return
		}
		if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
			t.Fatalf("%q: accepted %v", s, ap)
		}
	})
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Userspace, "userspace": Userspace, "tun": TUN} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseMode("kernel"); err == nil || !strings.Contains(err.Error(), "userspace") {
		t.Errorf("ParseMode(kernel): %v", err)
	}
}

func TestConfigValidation(t *testing.T) {
	key := [32]byte{1}
	addr := []netip.Addr{netip.MustParseAddr("100.64.0.1")}
	cases := map[string]Config{
		"zero key":        {Addresses: addr},
		"no addresses":    {PrivateKey: key},
		"bad port":        {PrivateKey: key, Addresses: addr, ListenPort: 70000},
		"tiny MTU":        {PrivateKey: key, Addresses: addr, MTU: 100},
		"v6 below 1280":   {PrivateKey: key, Addresses: []netip.Addr{netip.MustParseAddr("fd00::1")}, MTU: 1000},
		"long name":       {PrivateKey: key, Addresses: addr, TUNName: "a-very-long-interface-name"},
		"unspecified":     {PrivateKey: key, Addresses: []netip.Addr{netip.IPv4Unspecified()}},
		"unknown mode":    {PrivateKey: key, Addresses: addr, Mode: 7},
		"invalid prefix":  {PrivateKey: key, Addresses: addr, Prefixes: []netip.Prefix{{}}},
		"zoned addresses": {PrivateKey: key, Addresses: []netip.Addr{netip.MustParseAddr("fe80::1%eth0")}},
	}
	for name, cfg := range cases {
		if err := cfg.validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ok := Config{PrivateKey: key, Addresses: addr}
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	if ok.MTU != DefaultMTU || ok.TUNName != DefaultTUNName || ok.Log == nil {
		t.Errorf("defaults not filled in: %+v", ok)
	}
}

func TestKeys(t *testing.T) {
	priv, err := GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := PublicKey(priv)
	if err != nil || pub.IsZero() {
		t.Fatalf("PublicKey: %v, %v", pub, err)
	}
	again, _ := PublicKey(priv)
	if again != pub {
		t.Error("PublicKey is not deterministic")
	}
	other, _ := GeneratePrivateKey()
	if other == priv {
		t.Error("two generated keys are equal")
	}
}
