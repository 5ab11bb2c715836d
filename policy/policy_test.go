package policy

import (
	"errors"
	"strings"
	"testing"
)

const example = `{
  // CI may reach the databases, and the web servers over HTTP(S) and ping.
  "grants": [
    {"src": ["tag:ci"], "dst": ["tag:db"], "ip": ["tcp:5432"]},
    {"src": ["tag:ci"], "dst": ["tag:web"], "ip": ["tcp:80,443", "icmp"],},
    /* monitoring reaches everything on a port range */
    {"src": ["tag:mon"], "dst": ["*"], "ip": ["tcp:9100-9199", "udp:53"]},
  ],
  "tests": [
    {"src": "tag:ci", "accept": ["tag:db:5432"], "deny": ["tag:db:22", "tag:web:5432"]},
  ],
}
`

func TestParseExample(t *testing.T) {
	p, err := Load([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Grants) != 3 || len(p.Tests) != 1 {
		t.Fatalf("grants %d tests %d", len(p.Grants), len(p.Tests))
	}
	if p.Grants[0].Line != 4 || p.Grants[2].Line != 7 || p.Tests[0].Line != 10 {
		t.Errorf("lines: %d %d %d", p.Grants[0].Line, p.Grants[2].Line, p.Tests[0].Line)
	}
	ci, db, web, mon := []string{"tag:ci"}, []string{"tag:db"}, []string{"tag:web"}, []string{"tag:mon"}
	cases := []struct {
		src, dst []string
		proto    Proto
		port     uint16
		want     bool
	}{
		{ci, db, ProtoTCP, 5432, true},
		{ci, db, ProtoTCP, 5433, false},
		{ci, db, ProtoUDP, 5432, false},
		{db, ci, ProtoTCP, 5432, false}, // directional
		{ci, web, ProtoTCP, 443, true},
		{ci, web, ProtoTCP, 80, true},
		{ci, web, ProtoTCP, 81, false},
		{ci, web, ProtoICMP, 0, true},
		{ci, web, ProtoICMPv6, 0, true},
		{ci, db, ProtoICMP, 0, false},
		{mon, nil, ProtoTCP, 9150, true}, // "*" includes untagged nodes
		{mon, db, ProtoUDP, 53, true},
		{mon, db, ProtoTCP, 53, false},
		{nil, db, ProtoTCP, 5432, false}, // untagged source
		{[]string{"tag:x", "tag:ci"}, db, ProtoTCP, 5432, true},
	}
	for _, c := range cases {
		if got := p.Allows(c.src, c.dst, c.proto, c.port); got != c.want {
			t.Errorf("Allows(%v→%v %v:%d) = %v, want %v", c.src, c.dst, c.proto, c.port, got, c.want)
		}
		if got := RuleAllows(p.InboundRules(c.dst), c.src, c.proto, c.port); got != c.want {
			t.Errorf("RuleAllows(InboundRules(%v), %v, %v:%d) = %v, want %v", c.dst, c.src, c.proto, c.port, got, c.want)
		}
	}
	if !p.Visible(db, ci) || !p.Visible(ci, db) || p.Visible(db, web) || p.Visible(ci, ci) || !p.Visible(mon, nil) || p.Visible(nil, nil) {
		t.Error("visibility wrong")
	}
}

func TestNoPolicyAllowsAll(t *testing.T) {
	var p *Policy
	if !p.Allows(nil, nil, ProtoUDP, 1) || !p.Visible(nil, nil) || p.InboundRules(nil) != nil || !RuleAllows(nil, nil, ProtoTCP, 1) {
		t.Error("a nil policy must allow everything")
	}
	empty, err := Load([]byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if empty.Allows(nil, nil, ProtoTCP, 80) || empty.Visible(nil, nil) || RuleAllows(empty.InboundRules(nil), nil, ProtoTCP, 80) {
		t.Error("an empty policy must deny everything")
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, doc string
		line      int
		want      string
	}{
		{"port out of range", "{\n\"grants\": [\n {\"src\": [\"tag:a\"], \"dst\": [\"*\"], \"ip\": [\"tcp:70000\"]}\n]}", 3, "1 to 65535"},
		{"no protocol", "{\"grants\": [\n\n {\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"443\"]}]}", 3, `"tcp:443"`},
		{"user selector", "{\"grants\": [{\"src\": [\"alice@example.com\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}", 1, "tags come from auth keys"},
		{"unknown field", "{\"grants\": [\n{\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"*\"], \"app\": {}}]}", 2, `unknown field "app"`},
		{"acls", "{\n  \"acls\": []}", 2, "does not support"},
		{"syntax", "{\n\"grants\": [\n{\"src\": [\"*\"] \"dst\": []}]}", 3, "invalid character"},
		{"type", "{\"grants\": [\n{\"src\": \"tag:a\", \"dst\": [\"*\"], \"ip\": [\"*\"]}]}", 2, "a list of strings"},
		{"empty ip", "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"]}]}", 1, `"ip" is missing`},
		{"reversed range", "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"udp:9-1\"]}]}", 1, "ends before"},
		{"unclosed comment", "{\n/* oops\n}", 2, "never closed"},
		{"duplicate key", "{\"tests\": [],\n\"tests\": []}", 2, "twice"},
		{"trailing text", "{}\n{}", 2, "after the end"},
		{"test target", "{\"tests\": [\n{\"src\": \"tag:ci\", \"accept\": [\"tag:db\"]}]}", 2, "tag:NAME:PORT"},
		{"test star", "{\"tests\": [{\"src\": \"*\", \"accept\": [\"tag:db:1\"]}]}", 1, "must be a tag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Parse: %v, want a *policy.Error", err)
			}
			if pe.Line != c.line || !strings.Contains(pe.Msg, c.want) {
				t.Errorf("got line %d %q, want line %d containing %q", pe.Line, pe.Error(), c.line, c.want)
			}
		})
	}
}

func TestFailingTestIsReported(t *testing.T) {
	doc := strings.Replace(example, `"deny": ["tag:db:22"`, `"deny": ["tag:db:5432"`, 1)
	_, err := Load([]byte(doc))
	var te *TestError
	if !errors.As(err, &te) {
		t.Fatalf("Load: %v, want a *TestError", err)
	}
	if te.Line != 10 || !te.Accepted || te.Target != "tag:db:5432" || !strings.Contains(err.Error(), "line 10") {
		t.Errorf("got %+v: %v", te, err)
	}
	doc = strings.Replace(example, `"accept": ["tag:db:5432"]`, `"accept": ["tag:db:5433"]`, 1)
	if _, err := Load([]byte(doc)); !errors.As(err, &te) || te.Accepted || !strings.Contains(err.Error(), "cannot reach tag:db:5433") {
		t.Errorf("accept failure: %v", err)
	}
}

func TestPortSpecs(t *testing.T) {
	good := map[string]string{
		"*":              "tcp:*,udp:*,icmp",
		"icmp":           "icmp",
		"tcp:443":        "tcp:443",
		"udp:53":         "udp:53",
		"tcp:80,443":     "tcp:80,tcp:443",
		"tcp:8000-8999":  "tcp:8000-8999",
		"udp:*":          "udp:*",
		"tcp:1-65535":    "tcp:*",
		"tcp:22,100-200": "tcp:22,tcp:100-200",
	}
	for in, want := range good {
		prs, err := ParsePortSpec(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var s []string
		for _, r := range prs {
			s = append(s, r.String())
		}
		if got := strings.Join(s, ","); got != want && !(in == "tcp:1-65535" && got == "tcp:1-65535") {
			t.Errorf("%q → %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "443", "tcp", "tcp:", "tcp:0", "tcp:65536", "tcp:a", "sctp:1", "tcp:1-", "tcp:+1", "TCP:1", "tcp:1,,2"} {
		if _, err := ParsePortSpec(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestStandardizeKeepsPositions(t *testing.T) {
	src := "{\"a\": \"// not a comment, /* nor this */\", // but this\n \"b\": [1,2,],}"
	std, err := standardize([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(std) != len(src) || strings.Count(string(std), "\n") != 1 {
		t.Fatalf("%q", std)
	}
	if !strings.Contains(string(std), `"// not a comment, /* nor this */"`) || strings.Contains(string(std), "but this") || strings.Contains(string(std), "2,]") {
		t.Errorf("%q", std)
	}
}

func TestTagSetKey(t *testing.T) {
	if TagSetKey([]string{"tag:b", "tag:a", "tag:b"}) != "tag:a,tag:b" || TagSetKey(nil) != "" {
		t.Error(TagSetKey([]string{"tag:b", "tag:a", "tag:b"}))
	}
}

func TestRuleRoundTrip(t *testing.T) {
	p, err := Load([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.InboundRules([]string{"tag:web", "tag:db"}) {
		src, ip := r.Strings()
		back, err := ParseRule(src, ip)
		if err != nil {
			t.Fatal(err)
		}
		s2, ip2 := back.Strings()
		if strings.Join(src, " ") != strings.Join(s2, " ") || strings.Join(ip, " ") != strings.Join(ip2, " ") {
			t.Errorf("%v %v → %v %v", src, ip, s2, ip2)
		}
	}
	if _, err := ParseRule([]string{"bad"}, []string{"tcp:1"}); err == nil {
		t.Error("bad selector accepted")
	}
}
