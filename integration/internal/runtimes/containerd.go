package runtimes

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Containerd is a private standalone containerd (no CRI, no CNI) plus the
// bridge its containers' network namespaces attach to.
//
// This package does not link the containerd client: the suites do, so the
// docker suite stays light. Address is what they pass to client.New.
type Containerd struct {
	// Dir holds the daemon's root, state, config, socket and log.
	Dir string
	// Address is the gRPC socket path.
	Address string
	// CgroupParent is the cgroup every container must live under
	// (oci.WithCgroup(CgroupParent + "/" + id)): the cleanup removes it.
	CgroupParent string
	// Bridge is the host bridge container namespaces attach to, and
	// Gateway the host's address on it (in 198.18.0.0/15).
	Bridge  string
	Gateway netip.Prefix

	netnsPrefix string
	d           *daemon

	mu      sync.Mutex
	used    map[int]bool // host numbers of the bridge subnet in use
	counter int
}

// StartContainerd starts a private containerd and waits until its socket
// accepts connections (check Version with the client before use).
func StartContainerd() (*Containerd, error) {
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	c := &Containerd{Dir: dir, Address: filepath.Join(dir, "containerd", "containerd.sock"), used: map[int]bool{}}
	fail := func(err error) (*Containerd, error) {
		if c.d != nil {
			_ = c.d.stop(10 * time.Second)
		}
		_ = cleanup(dir)
		return nil, err
	}
	names, err := script("names", dir)
	if err != nil {
		return fail(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(names), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "cgroup_parent":
			c.CgroupParent = v
		case "bridge":
			c.Bridge = v
		case "bridge_addr":
			if c.Gateway, err = netip.ParsePrefix(v); err != nil {
				return fail(fmt.Errorf("runtimes.sh names: %w", err))
			}
		case "netns_prefix":
			c.netnsPrefix = v
		}
	}
	cfg, err := script("containerd-config", dir)
	if err != nil {
		return fail(err)
	}
	if _, err := script("bridge-up", dir); err != nil {
		return fail(err)
	}
	c.d, err = startDaemon("containerd", []string{"containerd", "--config", strings.TrimSpace(cfg)},
		filepath.Join(dir, "containerd", "containerd.log"))
	if err != nil {
		return fail(err)
	}
	err = c.d.waitReady(60*time.Second, func() error {
		conn, err := net.Dial("unix", c.Address)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err != nil {
		return fail(err)
	}
	return c, nil
}

// Netns is a network namespace with one veth on the Containerd bridge and
// no default route: the only addresses reachable from inside are loopback
// and the bridge subnet (198.18.16.0/24).
type Netns struct {
	// Path is the namespace file for the OCI spec's network namespace.
	Path string
	// Addr is the namespace's address on the bridge.
	Addr netip.Addr

	name string
	host int
	c    *Containerd
}

// NewNetns creates a network namespace attached to the bridge.
func (c *Containerd) NewNetns() (*Netns, error) {
	c.mu.Lock()
	host := 0
	for h := 2; h < 255; h++ {
		if !c.used[h] {
			host = h
			break
		}
	}
	if host == 0 {
		c.mu.Unlock()
		return nil, fmt.Errorf("runtimes: all %d addresses of %v in use", 253, c.Gateway.Masked())
	}
	c.used[host] = true
	c.counter++
	seq := c.counter
	c.mu.Unlock()
	n := &Netns{name: fmt.Sprintf("%s%d", c.netnsPrefix, seq), host: host, c: c}

	gw := c.Gateway.Addr().As4()
	gw[3] = byte(host)
	n.Addr = netip.AddrFrom4(gw)
	n.Path = filepath.Join("/run/netns", n.name)
	// the host end: "v" + seq + the bridge's unique suffix, <= 15 bytes
	hostIf := fmt.Sprintf("v%d%s", seq, c.Bridge[len(c.Bridge)-6:])
	steps := [][]string{
		{"netns", "add", n.name},
		{"link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", n.name},
		{"link", "set", hostIf, "master", c.Bridge, "up"},
		{"-n", n.name, "addr", "add", fmt.Sprintf("%v/%d", n.Addr, c.Gateway.Bits()), "dev", "eth0"},
		{"-n", n.name, "link", "set", "eth0", "up"},
		{"-n", n.name, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if out, err := exec.Command("ip", s...).CombinedOutput(); err != nil {
			_ = n.Delete()
			return nil, fmt.Errorf("ip %s: %v: %s", strings.Join(s, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return n, nil
}

// Delete removes the namespace (and with it the veth pair) and frees its
// address.
func (n *Netns) Delete() error {
	var err error
	if out, e := exec.Command("ip", "netns", "delete", n.name).CombinedOutput(); e != nil {
		err = fmt.Errorf("ip netns delete %s: %v: %s", n.name, e, strings.TrimSpace(string(out)))
	}
	n.c.mu.Lock()
	delete(n.c.used, n.host)
	n.c.mu.Unlock()
	return err
}

// Stop stops containerd (its shims and tasks die with their cgroups'
// processes only when killed: the suites delete their tasks first) and
// removes everything of Dir.
func (c *Containerd) Stop() error {
	var errs []string
	if err := c.d.stop(30 * time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	if err := cleanup(c.Dir); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("stopping containerd: %s", strings.Join(errs, "; "))
	}
	return nil
}
