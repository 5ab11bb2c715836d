package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/internal/testnet"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane"
)

// The relay part: two userspace devices in this process, a real relay
// server on loopback, and the same transfer three ways in one run: plain
// loopback TCP (the baseline), through the mesh on a direct UDP path, and
// through the mesh over the relay. Then the relay's latencies: from a
// device's start to the first byte through the relay, and from the first
// byte to the path turning direct.
//
//	go run ./bench/meshbench -only relay [-relay-runs 5 -relay-size 268435456]

var (
	relayRuns = flag.Int("relay-runs", 5, "measured runs of the relay part")
	relaySize = flag.Int64("relay-size", 256<<20, "bytes per measured transfer of the relay part")
)

func init() {
	addPart(part{name: "relay", order: 30, run: runRelayBench})
}

// benchRelay is a relay server whose clients present their public key as
// their bearer token (the coordinator's node secrets play no part in
// throughput). mesh, when set, links it with other replicas' relays.
func benchRelay(mesh *relay.MeshConfig) (*relay.Server, string, func()) {
	srv := relay.New(relay.Config{Mesh: mesh, Authenticate: func(r *http.Request) (meshapi.Key, *meshapi.Error) {
		var k meshapi.Key
		err := k.UnmarshalText([]byte(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		if err != nil {
			return k, &meshapi.Error{Status: 401, Code: meshapi.ErrUnauthorized, Message: "bad token"}
		}
		return k, nil
	}})
	hs := httptest.NewServer(srv)
	return srv, hs.URL, func() { srv.Close(); hs.Close() }
}

// linkedRelays starts two relays linked as two replicas' relays are.
func linkedRelays() (srvs [2]*relay.Server, urls [2]string, stop func()) {
	key := make([]byte, relay.MinMeshKey)
	rand.Read(key)
	var mu sync.Mutex
	var stops [2]func()
	for i := range srvs {
		other := 1 - i
		srv, url, stop := benchRelay(&relay.MeshConfig{ID: fmt.Sprint("r", i), Key: key,
			Peers: func(context.Context) ([]relay.Peer, error) {
				mu.Lock()
				defer mu.Unlock()
				return []relay.Peer{{ID: fmt.Sprint("r", other), URL: urls[other]}}, nil
			}})
		mu.Lock()
		srvs[i], urls[i], stops[i] = srv, url, stop
		mu.Unlock()
	}
	return srvs, urls, func() { stops[0](); stops[1]() }
}

type benchNode struct {
	dev  *dataplane.Device
	pub  meshapi.Key
	ipv4 netip.Addr
}

// newBenchNode starts a device; relayURL "" means no relay. advertise
// makes its loopback port its only own endpoint.
func newBenchNode(n int, relayURL string, advertise bool) (*benchNode, error) {
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	pub, _ := dataplane.PublicKey(priv)
	ip := netip.AddrFrom4([4]byte{100, 64, 0, byte(n)})
	cfg := dataplane.Config{PrivateKey: priv, Addresses: []netip.Addr{ip}, Prefixes: []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")},
		AdvertiseEndpoints: func(port uint16) []netip.AddrPort {
			if !advertise {
				return nil
			}
			return []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
		}}
	if relayURL != "" {
		tok, _ := pub.MarshalText()
		cfg.Relay = &dataplane.RelayConfig{URL: relayURL, Authorization: func() (string, error) { return "Bearer " + string(tok), nil }}
	}
	dev, err := dataplane.New(cfg)
	if err != nil {
		return nil, err
	}
	if err := dev.Forward(nil); err != nil {
		dev.Close()
		return nil, err
	}
	return &benchNode{dev: dev, pub: pub, ipv4: ip}, nil
}

func (n *benchNode) peer(endpoints ...netip.AddrPort) dataplane.Peer {
	return dataplane.Peer{PublicKey: n.pub, AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.ipv4, 32)}, Endpoints: endpoints}
}

func (n *benchNode) loopback() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), n.dev.ListenPort())
}

// benchPair makes two peered nodes: over the relays only (no endpoints;
// a on relayA, b on relayB), or direct only (loopback endpoints, no relay).
func benchPair(relayA, relayB string) (a, b *benchNode, err error) {
	if a, err = newBenchNode(1, relayA, false); err != nil {
		return nil, nil, err
	}
	if b, err = newBenchNode(2, relayB, false); err != nil {
		a.dev.Close()
		return nil, nil, err
	}
	var ea, eb []netip.AddrPort
	if relayA == "" {
		ea, eb = []netip.AddrPort{a.loopback()}, []netip.AddrPort{b.loopback()}
	}
	a.dev.UpsertPeer(b.peer(eb...))
	b.dev.UpsertPeer(a.peer(ea...))
	return a, b, nil
}

// listenLoopback serves handle on a free loopback port.
func listenLoopback(handle func(net.Conn)) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go testnet.ServeListener(ln, handle)
	return ln, nil
}

// discardThenAck reads until the sender half-closes, then answers one
// byte: the end of a timed transfer.
func discardThenAck(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Write([]byte{1})
}

// timedTransfer sends size bytes over c, half-closes, and waits for the
// sink's byte.
func timedTransfer(c net.Conn, size int64) (float64, error) {
	defer c.Close()
	buf := make([]byte, 256<<10)
	start := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		return 0, fmt.Errorf("waiting for the sink: %w", err)
	}
	return float64(size) / time.Since(start).Seconds() / (1 << 20), nil
}

// meshTransfer times a transfer from a node on relayA to one on relayB
// (both "": direct). ready, when set, is waited for first (the linked
// relays learning of each other's node).
func meshTransfer(relayA, relayB string, ready func(a, b *benchNode) bool, port int, size int64) (float64, error) {
	a, b, err := benchPair(relayA, relayB)
	if err != nil {
		return 0, err
	}
	defer a.dev.Close()
	defer b.dev.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for ready != nil && !ready(a, b) {
		if ctx.Err() != nil {
			return 0, errors.New("the linked relays never learned of each other's node")
		}
		time.Sleep(10 * time.Millisecond)
	}
	c, err := a.dev.DialContext(ctx, "tcp", netip.AddrPortFrom(b.ipv4, uint16(port)).String())
	if err != nil {
		return 0, err
	}
	rate, err := timedTransfer(c, size)
	want := dataplane.PathDirect
	if relayA != "" {
		want = dataplane.PathRelay
	}
	if p := a.dev.Path(b.pub); err == nil && p.Kind != want {
		err = fmt.Errorf("path was %s (%s), want %s", p.Kind, p.Reason, want)
	}
	return rate, err
}

// firstByteAndDirect measures, from the start of two relay-connected
// devices: the first echoed byte through the relay, and the moment the
// path turns direct (both advertise a loopback endpoint, the map gives
// none, so only call-me-maybe over the relay tells them). A watcher polls
// the path every millisecond from the start.
func firstByteAndDirect(relayURL string, echoPort int) (first, direct time.Duration, err error) {
	begin := time.Now()
	a, err := newBenchNode(1, relayURL, true)
	if err != nil {
		return 0, 0, err
	}
	defer a.dev.Close()
	b, err := newBenchNode(2, relayURL, true)
	if err != nil {
		return 0, 0, err
	}
	defer b.dev.Close()
	a.dev.UpsertPeer(b.peer())
	b.dev.UpsertPeer(a.peer())
	directAt := make(chan time.Time, 1)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for a.dev.Path(b.pub).Kind != dataplane.PathDirect {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
		directAt <- time.Now()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := a.dev.DialContext(ctx, "tcp", netip.AddrPortFrom(b.ipv4, uint16(echoPort)).String())
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	one := make([]byte, 1)
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(one); err != nil {
		return 0, 0, err
	}
	if _, err := io.ReadFull(c, one); err != nil {
		return 0, 0, err
	}
	first = time.Since(begin)
	for {
		select {
		case at := <-directAt:
			return first, at.Sub(begin), nil
		case <-time.After(5 * time.Millisecond):
			if time.Since(begin) > 30*time.Second {
				return first, 0, errors.New("the path did not turn direct within 30 s")
			}
			c.Write(one) // keep the peer active
			io.ReadFull(c, one)
		}
	}
}

// startProfile writes a CPU profile of the relay transfer of run i to
// prefix.i when prefix is set (RELAY_CPUPROFILE).
func startProfile(prefix string, i int) (stop func()) {
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%d", prefix, i))
	if err != nil {
		return func() {}
	}
	if pprof.StartCPUProfile(f) != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func runRelayBench(_ binaries, _ int) error {
	_, url, stop := benchRelay(nil)
	defer stop()
	linked, lurls, stopLinked := linkedRelays()
	defer stopLinked()
	bothKnown := func(a, b *benchNode) bool {
		_, okB := linked[0].RemoteReplica(b.pub)
		_, okA := linked[1].RemoteReplica(a.pub)
		return okA && okB
	}
	sink, err := listenLoopback(discardThenAck)
	if err != nil {
		return err
	}
	defer sink.Close()
	echo, err := listenLoopback(func(c net.Conn) { io.Copy(c, c) })
	if err != nil {
		return err
	}
	defer echo.Close()
	port := sink.Addr().(*net.TCPAddr).Port
	var plain, direct, relayed, relayVsDirect, twoRelays, twoVsOne, bareOne, bareTwo, bareRatio []float64
	bareReady := func(a, b meshapi.Key) bool {
		_, okB := linked[0].RemoteReplica(b)
		_, okA := linked[1].RemoteReplica(a)
		return okA && okB
	}
	var firsts, directs []time.Duration
	for i := range *relayRuns {
		c, err := net.Dial("tcp", sink.Addr().String())
		if err != nil {
			return err
		}
		p, err := timedTransfer(c, *relaySize)
		if err != nil {
			return fmt.Errorf("plain TCP: %w", err)
		}
		d, err := meshTransfer("", "", nil, port, *relaySize)
		if err != nil {
			return fmt.Errorf("direct mesh: %w", err)
		}
		stopProfile := startProfile(os.Getenv("RELAY_CPUPROFILE"), i)
		r, err := meshTransfer(url, url, nil, port, *relaySize)
		stopProfile()
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		two, err := meshTransfer(lurls[0], lurls[1], bothKnown, port, *relaySize)
		if err != nil {
			return fmt.Errorf("two linked relays: %w", err)
		}
		one, err := frameRate(url, url, nil, *relaySize)
		if err != nil {
			return fmt.Errorf("bare frames, one relay: %w", err)
		}
		twoBare, err := frameRate(lurls[0], lurls[1], bareReady, *relaySize)
		if err != nil {
			return fmt.Errorf("bare frames, two linked relays: %w", err)
		}
		bareOne, bareTwo, bareRatio = append(bareOne, one), append(bareTwo, twoBare), append(bareRatio, twoBare/one)
		f, dd, err := firstByteAndDirect(url, echo.Addr().(*net.TCPAddr).Port)
		if err != nil {
			return fmt.Errorf("latencies: %w", err)
		}
		plain, direct, relayed = append(plain, p), append(direct, d), append(relayed, r)
		relayVsDirect = append(relayVsDirect, r/d)
		twoRelays, twoVsOne = append(twoRelays, two), append(twoVsOne, two/r)
		firsts, directs = append(firsts, f), append(directs, dd)
		fmt.Printf("  relay run %d: plain %.0f, direct %.0f, relay %.0f, two linked relays %.0f MiB/s; first byte after %v, direct after %v\n",
			i+1, p, d, r, two, f.Round(time.Millisecond), dd.Round(time.Millisecond))
	}
	fmt.Printf("\nrelay: %d runs of %d MiB, userspace nodes and the relay in one process, loopback\n", *relayRuns, *relaySize>>20)
	fmt.Printf("  %-40s %8.0f MiB/s\n", "plain loopback TCP (baseline)", median(plain))
	fmt.Printf("  %-40s %8.0f MiB/s   ratio to TCP %.3f\n", "mesh, direct UDP path", median(direct), median(direct)/median(plain))
	fmt.Printf("  %-40s %8.0f MiB/s   ratio to TCP %.3f\n", "mesh, through the relay", median(relayed), median(relayed)/median(plain))
	fmt.Printf("  %-40s %8.3f         (per run: %s; target ≥ 0.5)\n", "ratio relay / direct", median(relayVsDirect), dpFmtList(relayVsDirect, "%.2f"))
	fmt.Printf("  %-40s %8.0f MiB/s   ratio to TCP %.3f\n", "mesh, through two linked relays", median(twoRelays), median(twoRelays)/median(plain))
	fmt.Printf("  %-40s %8.3f         (per run: %s)\n", "ratio two linked relays / one relay", median(twoVsOne), dpFmtList(twoVsOne, "%.2f"))
	fmt.Printf("  %-40s %8.0f MiB/s\n", "bare frames through one relay", median(bareOne))
	fmt.Printf("  %-40s %8.0f MiB/s\n", "bare frames through two linked relays", median(bareTwo))
	fmt.Printf("  %-40s %8.3f         (per run: %s)\n", "ratio bare two relays / one relay", median(bareRatio), dpFmtList(bareRatio, "%.2f"))
	fmt.Printf("  %-40s %8s\n", "start → first byte through the relay", median(firsts).Round(time.Millisecond))
	fmt.Printf("  %-40s %8s\n", "start → path direct", median(directs).Round(time.Millisecond))
	return nil
}
