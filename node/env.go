package node

import (
	"net/netip"
	"os"
	"strings"
)

// defaultNoProxy are destinations the child must reach directly.
var defaultNoProxy = []string{"localhost", "127.0.0.1", "::1"}

// ChildEnv is the environment meshinit adds for its child: MESH_NAME (the
// FQDN), MESH_IPV4, MESH_IPV6 (left out when the node has no IPv6: a TUN
// interface where IPv6 is disabled) and, when the proxy runs, ALL_PROXY
// (socks5h://, so the proxy resolves mesh names), HTTP_PROXY and
// HTTPS_PROXY (http://), their lower-case twins, and NO_PROXY
// (localhost,127.0.0.1,::1 plus whatever the caller's NO_PROXY had).
func (n *Node) ChildEnv() []string {
	n.mu.Lock()
	self, proxy := n.self, n.proxyAddr
	if n.noIPv6 {
		self.IPv6 = netip.Addr{}
	}
	n.mu.Unlock()
	return childEnv(self.FQDN, self.IPv4.String(), self.IPv6.String(), proxy, os.Getenv("NO_PROXY")+","+os.Getenv("no_proxy"))
}

func childEnv(fqdn, ipv4, ipv6, proxy, callerNoProxy string) []string {
	env := []string{"MESH_NAME=" + strings.TrimSuffix(fqdn, ".")}
	if ipv4 != "invalid IP" {
		env = append(env, "MESH_IPV4="+ipv4)
	}
	if ipv6 != "invalid IP" {
		env = append(env, "MESH_IPV6="+ipv6)
	}
	if proxy == "" {
		return env
	}
	socks := "socks5h://" + proxy
	web := "http://" + proxy
	noProxy := mergeList(defaultNoProxy, callerNoProxy)
	for _, kv := range [][2]string{
		{"ALL_PROXY", socks}, {"HTTP_PROXY", web}, {"HTTPS_PROXY", web}, {"NO_PROXY", noProxy},
	} {
		env = append(env, kv[0]+"="+kv[1], strings.ToLower(kv[0])+"="+kv[1])
	}
	return env
}

// mergeList appends the comma-separated entries of extra to base, without
// duplicates or empty entries.
func mergeList(base []string, extra string) string {
	out := append([]string(nil), base...)
	seen := map[string]bool{}
	for _, s := range base {
		seen[s] = true
	}
	for _, s := range strings.Split(extra, ",") {
		s = strings.TrimSpace(s)
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return strings.Join(out, ",")
}
