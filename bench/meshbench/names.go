package main

// The names half of meshbench (issue 11):
//
//   dns:     answer latency of the mesh resolver (node/dnsserver) for a mesh
//            name, against the baseline of a container's usual resolver
//            answering from its cache: dnsmasq, started by the benchmark,
//            forwarding to an origin server of ours and answering a name it
//            has cached. Also the mesh resolver's forward path (a non-mesh
//            name through the mesh resolver to that same dnsmasq), which is
//            what every other lookup of a TUN-mode app pays. Each server is
//            its own process; the client is this process, one query at a
//            time over UDP on loopback.
//
//   connect: TCP throughput through MESH_CONNECT's local forwarder
//            (node/localfwd) against the SOCKS5 proxy path, same node pair
//            (userspace data plane), same run, plus plain loopback TCP.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/dnsserver"
	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/localfwd"
	"github.com/meshinit/meshinit/node/nametable"
)

var (
	dnsRuns    = flag.Int("dns-runs", 5, "measured runs of the dns part (medians of each run's p50 and p99)")
	dnsQueries = flag.Int("dns-queries", 5000, "queries per series per run")
	dnsNodes   = flag.Int("dns-nodes", 1000, "nodes in the mesh resolver's map")
)

func init() {
	addPart(part{name: "dns", order: 30, run: runDNSBench})
	addPart(part{name: "connect", order: 40, run: runConnectBench})
}

// ---- dns ----

// dnsSeries is one kind of query measured.
type dnsSeries struct {
	label  string
	server func() string // address, known once the servers run
	name   string
	p50    []time.Duration // one per run
	p99    []time.Duration
	lost   int
}

func runDNSBench(_ binaries, _ int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dnsmasqBin, err := exec.LookPath("dnsmasq")
	if err != nil {
		return fmt.Errorf("dnsmasq (the caching baseline) not found: scripts/runtimes.sh install adds dnsmasq-base")
	}
	origin, err := dpStartRole(self, nil, "dns-origin")
	if err != nil {
		return err
	}
	defer origin.stop()
	originAddr := strings.TrimPrefix(origin.first, "UP ")
	cache, cacheAddr, err := startDnsmasqCache(dnsmasqBin, originAddr)
	if err != nil {
		return err
	}
	defer cache.Process.Kill()
	resolver, err := dpStartRole(self, nil, "dns-server", "DNS_UPSTREAM="+cacheAddr, fmt.Sprintf("DNS_NODES=%d", *dnsNodes))
	if err != nil {
		return err
	}
	defer resolver.stop()
	resolverAddr := strings.TrimPrefix(resolver.first, "UP ")

	meshName := fmt.Sprintf("node-%d.mesh.internal.", *dnsNodes/2)
	series := []*dnsSeries{
		{label: "mesh name, mesh resolver (from the map)", server: func() string { return resolverAddr }, name: meshName},
		{label: "baseline: dnsmasq answering from its cache", server: func() string { return cacheAddr }, name: "cached.test."},
		{label: "other name, mesh resolver → dnsmasq cache", server: func() string { return resolverAddr }, name: "cached.test."},
	}
	// Warm up: fill dnsmasq's cache, check every series answers.
	for _, s := range series {
		if _, lost, err := dnsMeasure(s.server(), s.name, 50); err != nil || lost > 0 {
			return fmt.Errorf("warm-up of %q: %d lost, %v", s.label, lost, err)
		}
	}
	fmt.Printf("\n## DNS answer latency (%d runs × %d queries per series, one at a time over UDP on loopback; %d nodes in the map)\n",
		*dnsRuns, *dnsQueries, *dnsNodes)
	const blocks = 10 // series interleaved in blocks, so load changes hit all alike
	for run := range *dnsRuns {
		samples := make([][]time.Duration, len(series))
		for range blocks {
			for i, s := range series {
				d, lost, err := dnsMeasure(s.server(), s.name, *dnsQueries/blocks)
				if err != nil {
					return fmt.Errorf("run %d, %s: %w", run+1, s.label, err)
				}
				samples[i] = append(samples[i], d...)
				s.lost += lost
			}
		}
		for i, s := range series {
			s.p50 = append(s.p50, percentile(samples[i], 50))
			s.p99 = append(s.p99, percentile(samples[i], 99))
		}
		fmt.Printf("  run %d: p50 mesh %v, dnsmasq cache %v, forwarded %v\n", run+1,
			series[0].p50[run], series[1].p50[run], series[2].p50[run])
	}
	fmt.Printf("\n  %-44s %10s %10s %8s\n", "", "p50", "p99", "lost")
	for _, s := range series {
		fmt.Printf("  %-44s %10v %10v %8d\n", s.label, median(s.p50), median(s.p99), s.lost)
	}
	base := series[1]
	fmt.Printf("  ratio mesh name / dnsmasq cache:  p50 %.2f, p99 %.2f\n",
		float64(median(series[0].p50))/float64(median(base.p50)), float64(median(series[0].p99))/float64(median(base.p99)))
	fmt.Printf("  ratio forwarded / dnsmasq cache:  p50 %.2f, p99 %.2f (the mesh resolver's cost on other names)\n",
		float64(median(series[2].p50))/float64(median(base.p50)), float64(median(series[2].p99))/float64(median(base.p99)))
	return nil
}

// startDnsmasqCache runs dnsmasq on a free loopback port, forwarding to
// origin and caching.
func startDnsmasqCache(bin, origin string) (*exec.Cmd, string, error) {
	port, err := freeUDPPort()
	if err != nil {
		return nil, "", err
	}
	ap := netip.MustParseAddrPort(origin)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=127.0.0.1", "--bind-interfaces", fmt.Sprintf("--port=%d", port),
		fmt.Sprintf("--server=127.0.0.1#%d", ap.Port()), "--cache-size=1000", "--pid-file=", "--log-facility=-")
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, lost, err := dnsMeasure(addr, "cached.test.", 1); err == nil && lost == 0 {
			return cmd, addr, nil
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, "", errors.New("dnsmasq did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
}

func freeUDPPort() (int, error) {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port, nil
}

// dnsMeasure sends n A queries for name to server one after the other and
// returns each round trip; a query without an answer within a second counts
// as lost.
func dnsMeasure(server, name string, n int) ([]time.Duration, int, error) {
	c, err := net.Dial("udp", server)
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	out := make([]time.Duration, 0, n)
	lost := 0
	buf := make([]byte, 1500)
	for i := range n {
		id := uint16(i)
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		start := time.Now()
		c.SetDeadline(start.Add(time.Second))
		if _, err := c.Write(q); err != nil {
			return nil, lost, err
		}
		for {
			m, err := c.Read(buf)
			if err != nil {
				lost++
				break
			}
			var p dnsmessage.Parser
			if h, err := p.Start(buf[:m]); err == nil && h.ID == id {
				if h.RCode != dnsmessage.RCodeSuccess {
					return nil, lost, fmt.Errorf("%s: %v", name, h.RCode)
				}
				out = append(out, time.Since(start))
				break
			}
		}
	}
	return out, lost, nil
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

// dnsOriginRole is the authority behind dnsmasq: cached.test A 198.18.9.9
// with a TTL of an hour, everything else NXDOMAIN. It prints "UP <addr>".
func dnsOriginRole() error {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	fmt.Printf("UP %s\n", c.LocalAddr())
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // EOF on stdin ends the role
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil {
			continue
		}
		q, err := p.Question()
		if err != nil {
			continue
		}
		rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
		found := strings.EqualFold(q.Name.String(), "cached.test.")
		if !found {
			rh.RCode = dnsmessage.RCodeNameError
		}
		b := dnsmessage.NewBuilder(nil, rh)
		b.StartQuestions()
		b.Question(q)
		b.StartAnswers()
		if found && q.Type == dnsmessage.TypeA {
			b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 3600},
				dnsmessage.AResource{A: [4]byte{198, 18, 9, 9}})
		}
		resp, _ := b.Finish()
		c.WriteToUDPAddrPort(resp, from)
	}
}

// dnsServerRole is the mesh resolver, as meshinit runs it, with a map of
// DNS_NODES nodes (node-0 … node-N-1) and DNS_UPSTREAM as the original
// nameserver. It prints "UP <addr>".
func dnsServerRole() error {
	var nodes int
	fmt.Sscan(os.Getenv("DNS_NODES"), &nodes)
	up, err := netip.ParseAddrPort(os.Getenv("DNS_UPSTREAM"))
	if err != nil {
		return err
	}
	entries := make([]nametable.Entry, nodes)
	for i := range entries {
		entries[i] = nametable.Entry{ID: meshapi.NodeID(i + 1), Name: fmt.Sprintf("node-%d", i),
			IPv4: netip.AddrFrom4([4]byte{100, 64, byte(i >> 8), byte(i)})}
	}
	var names nametable.Table
	names.Reset("mesh.internal", []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, entries)
	srv, err := dnsserver.Listen("127.0.0.1:0", dnsserver.Config{Names: &names, Upstreams: []netip.AddrPort{up}})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("UP %s\n", srv.Addr())
	io.Copy(io.Discard, os.Stdin) // EOF on stdin ends the role
	return nil
}

// ---- connect ----

func runConnectBench(_ binaries, _ int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("\n## MESH_CONNECT throughput against the SOCKS5 proxy (%d MiB per transfer, %d runs, userspace data plane)\n",
		*dpSize>>20, *dpRuns)
	var base, socks, connect []dpTransfer
	for run := range *dpRuns {
		b, s, c, err := connectRun(self, run%2 == 1)
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		base, socks, connect = append(base, b), append(socks, s), append(connect, c)
		fmt.Printf("  run %d: loopback %.0f MiB/s, SOCKS5 %.0f MiB/s, MESH_CONNECT %.0f MiB/s (connect/socks %.3f)\n",
			run+1, b.rate(), s.rate(), c.rate(), c.rate()/s.rate())
	}
	ratios := make([]float64, len(socks))
	for i := range socks {
		ratios[i] = connect[i].rate() / socks[i].rate()
	}
	fmt.Printf("\n  %-34s %7.0f MiB/s\n", "plain TCP over loopback", median(dpRates(base)))
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the SOCKS5 proxy", median(dpRates(socks)))
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through MESH_CONNECT", median(dpRates(connect)))
	fmt.Printf("  %-34s %10.3f   (per run: %s)\n", "ratio MESH_CONNECT / SOCKS5", median(ratios), dpFmtList(ratios, "%.3f"))
	return nil
}

// connectRun moves one transfer each way through a fresh node pair: plain
// loopback, then SOCKS5 and MESH_CONNECT (in the order given by
// connectFirst, alternated between runs).
func connectRun(self string, connectFirst bool) (base, socks, connect dpTransfer, err error) {
	sink, sinkPort, err := dpStartSink(self, nil, "127.0.0.1:0")
	if err != nil {
		return
	}
	defer sink.stop()
	a, b, err := dpStartNodePair(self, "node", nil, nil, "127.0.0.1", "127.0.0.1", true, sinkPort)
	if err != nil {
		return
	}
	defer a.stop()
	defer b.stop()
	meshTarget := fmt.Sprintf("100.64.0.2:%d", sinkPort)
	local, err := a.command("CONNECT " + meshTarget)
	if err != nil {
		return base, socks, connect, fmt.Errorf("starting the forwarder: %w", err)
	}
	if _, err = dpRunSource(self, nil, local, "", 1<<20); err != nil {
		return base, socks, connect, fmt.Errorf("warm-up through MESH_CONNECT: %w", err)
	}
	if base, err = dpRunSource(self, nil, fmt.Sprintf("127.0.0.1:%d", sinkPort), "", *dpSize); err != nil {
		return
	}
	viaSocks := func() error { socks, err = dpRunSource(self, nil, meshTarget, a.proxy, *dpSize); return err }
	viaConnect := func() error { connect, err = dpRunSource(self, nil, local, "", *dpSize); return err }
	order := []func() error{viaSocks, viaConnect}
	if connectFirst {
		order = []func() error{viaConnect, viaSocks}
	}
	for _, f := range order {
		if err = f(); err != nil {
			return
		}
	}
	return
}

// dpConnect starts a MESH_CONNECT forwarder on a free 127.0.0.1 port to
// target (a mesh ip:port) through dev.
func dpConnect(dev *dataplane.Device, target string) (*localfwd.Forwarders, error) {
	hp, err := hostport.Parse(target)
	if err != nil {
		return nil, err
	}
	f, err := localfwd.Listen([]localfwd.Rule{{Local: 0, Remote: hp}})
	if err != nil {
		return nil, err
	}
	f.Serve(dev.DialContext, nil)
	return f, nil
}

// command sends one line to a node role and returns what follows its "OK".
func (p *dpProc) command(line string) (string, error) {
	if _, err := fmt.Fprintln(p.in, line); err != nil {
		return "", err
	}
	s, err := p.line(10 * time.Second)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(s, "OK ")
	if !ok {
		return "", errors.New(s)
	}
	return rest, nil
}
