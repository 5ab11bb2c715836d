package main

// The processes the throughput part runs: the benchmark binary re-executes
// itself with MESHBENCH_DP_ROLE set, so a data plane node, a sink and a
// source can each run as their own process, inside a network namespace
// when TUN mode needs one (ip netns exec). Real processes, because the
// memory of interest is a node's own and the two nodes of a real mesh never
// share a Go runtime.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun/netstack"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/localfwd"
	"github.com/meshinit/meshinit/node/proxy"
)

const dpRoleEnv = "MESHBENCH_DP_ROLE"

// A role runs before main (and before main's build step), then exits.
func init() {
	role := os.Getenv(dpRoleEnv)
	if role == "" {
		return
	}
	var err error
	switch role {
	case "node":
		err = dpNodeRole()
	case "reference-node":
		err = dpReferenceNodeRole()
	case "sink":
		err = dpSinkRole()
	case "source":
		err = dpSourceRole()
	case "dns-origin": // names.go
		err = dnsOriginRole()
	case "dns-server":
		err = dnsServerRole()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshbench %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// dpNodeRole is one mesh node. Environment: DP_MODE (userspace|tun),
// DP_ADDR (its mesh IPv4), DP_MTU, DP_MEMLIMIT_MIB (0: none), DP_PROXY=1
// (run the proxy on 127.0.0.1), DP_CPUPROFILE (write a CPU profile there,
// with the node's address appended), DP_POLICY_PORT and DP_PEER_TAGS (an
// access policy in force, and the peers' tags: throughput_policy.go). It
// prints "UP <key> <udp port> <proxy>"
// and then takes "PEER <key> <ipv4> <endpoint>" lines; EOF ends it, after
// it printed "RSS <peak resident KiB>".
func dpNodeRole() error {
	if path := os.Getenv("DP_CPUPROFILE"); path != "" {
		// For speed work: go tool pprof <binary> <path>.
		f, err := os.Create(path + "." + os.Getenv("DP_ADDR"))
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if mib, _ := strconv.Atoi(os.Getenv("DP_MEMLIMIT_MIB")); mib > 0 {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
	mode, err := dataplane.ParseMode(os.Getenv("DP_MODE"))
	if err != nil {
		return err
	}
	mtu, _ := strconv.Atoi(os.Getenv("DP_MTU"))
	addr, err := netip.ParseAddr(os.Getenv("DP_ADDR"))
	if err != nil {
		return err
	}
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		return err
	}
	dev, err := dataplane.New(dataplane.Config{
		PrivateKey: priv,
		Addresses:  []netip.Addr{addr},
		Prefixes:   []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")},
		MTU:        mtu,
		Mode:       mode,
		TUNName:    "mesh0",
	})
	if err != nil {
		return err
	}
	defer dev.Close()
	if err := dev.Forward(nil); err != nil {
		return err
	}
	if err := dpNodePolicy(dev); err != nil {
		return err
	}
	proxyAddr := "-"
	if os.Getenv("DP_PROXY") == "1" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &proxy.Server{Dial: dev.DialContext}
		go srv.Serve(ln)
		defer srv.Close()
		proxyAddr = ln.Addr().String()
	}
	pub := dev.PublicKey()
	fmt.Printf("UP %s %d %s\n", hex.EncodeToString(pub[:]), dev.ListenPort(), proxyAddr)
	sc := bufio.NewScanner(os.Stdin)
	var fwd *localfwd.Forwarders
	defer func() {
		if fwd != nil {
			fwd.Close()
		}
	}()
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "CONNECT" && fwd == nil {
			// MESH_CONNECT's forwarder to <ip:port> on a free local port
			// (names.go's connect part): answers "OK <local address>".
			fwd, err = dpConnect(dev, f[1])
			if err != nil {
				fmt.Println("ERR", err)
				continue
			}
			fmt.Println("OK", fwd.Addrs()[0])
			continue
		}
		if len(f) != 4 || f[0] != "PEER" {
			fmt.Println("ERR want PEER <key> <ipv4> <endpoint>")
			continue
		}
		var k meshapi.Key
		if _, err := hex.Decode(k[:], []byte(f[1])); err != nil {
			fmt.Println("ERR", err)
			continue
		}
		err := dev.UpsertPeer(dataplane.Peer{
			PublicKey:  k,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix(f[2] + "/32")},
			Endpoints:  []netip.AddrPort{netip.MustParseAddrPort(f[3])},
			Tags:       dpPeerTags(),
		})
		if err != nil {
			fmt.Println("ERR", err)
			continue
		}
		fmt.Println("OK")
	}
	if os.Getenv("DP_STATS") == "1" {
		fmt.Fprintf(os.Stderr, "node %s: %+v\n", addr, dev.Stats())
	}
	fmt.Printf("RSS %d\n", peakRSSKiB())
	return nil
}

// peakRSSKiB is this process's VmHWM. (The rusage a parent gets from wait4
// will not do: a child forked from a bigger parent inherits its high-water
// mark.)
func peakRSSKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// dpReferenceNodeRole is the same node built the way wireguard-go's own
// example does it (tun/netstack: one packet per call, no segmentation
// offload, no coalescing), for a same-run comparison. It has no inbound
// forwarder, so DP_FORWARD_PORT names the one port it forwards.
func dpReferenceNodeRole() error {
	if mib, _ := strconv.Atoi(os.Getenv("DP_MEMLIMIT_MIB")); mib > 0 {
		debug.SetMemoryLimit(int64(mib) << 20)
	}
	mtu, _ := strconv.Atoi(os.Getenv("DP_MTU"))
	if mtu == 0 {
		mtu = dataplane.DefaultMTU
	}
	addr, err := netip.ParseAddr(os.Getenv("DP_ADDR"))
	if err != nil {
		return err
	}
	tdev, tnet, err := netstack.CreateNetTUN([]netip.Addr{addr}, nil, mtu)
	if err != nil {
		return err
	}
	dev := device.NewDevice(tdev, conn.NewDefaultBind(), device.NewLogger(device.LogLevelError, ""))
	defer dev.Close()
	priv, err := dataplane.GeneratePrivateKey()
	if err != nil {
		return err
	}
	pub, _ := dataplane.PublicKey(priv)
	if err := dev.IpcSet("private_key=" + hex.EncodeToString(priv[:]) + "\nlisten_port=0\n"); err != nil {
		return err
	}
	if err := dev.Up(); err != nil {
		return err
	}
	state, err := dev.IpcGet()
	if err != nil {
		return err
	}
	port := 0
	for _, line := range strings.Split(state, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			port, _ = strconv.Atoi(v)
		}
	}
	if fp, _ := strconv.Atoi(os.Getenv("DP_FORWARD_PORT")); fp > 0 {
		ln, err := tnet.ListenTCPAddrPort(netip.AddrPortFrom(addr, uint16(fp)))
		if err != nil {
			return err
		}
		defer ln.Close()
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					l, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", fp))
					if err != nil {
						c.Close()
						return
					}
					proxy.Relay(c, l)
				}()
			}
		}()
	}
	proxyAddr := "-"
	if os.Getenv("DP_PROXY") == "1" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := &proxy.Server{Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return nil, err
			}
			return tnet.DialContextTCPAddrPort(ctx, ap)
		}}
		go srv.Serve(ln)
		defer srv.Close()
		proxyAddr = ln.Addr().String()
	}
	fmt.Printf("UP %s %d %s\n", hex.EncodeToString(pub[:]), port, proxyAddr)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 4 || f[0] != "PEER" {
			fmt.Println("ERR want PEER <key> <ipv4> <endpoint>")
			continue
		}
		// No persistent keepalive: both nodes would initiate at once and
		// stall on crossing handshakes (see dataplane's handshakeArbiter);
		// the first data packet starts the one handshake instead.
		err := dev.IpcSet(fmt.Sprintf("public_key=%s\nallowed_ip=%s/32\nendpoint=%s\n", f[1], f[2], f[3]))
		if err != nil {
			fmt.Println("ERR", err)
			continue
		}
		fmt.Println("OK")
	}
	fmt.Printf("RSS %d\n", peakRSSKiB())
	return nil
}

// dpSinkRole listens on DP_LISTEN, prints "PORT <port>", and for each
// connection reads to EOF and answers with the byte count (8 bytes).
func dpSinkRole() error {
	ln, err := net.Listen("tcp", os.Getenv("DP_LISTEN"))
	if err != nil {
		return err
	}
	fmt.Printf("PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }() // EOF on stdin ends the sink
	buf := make([]byte, 256<<10)
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		var n uint64
		for {
			m, err := c.Read(buf)
			n += uint64(m)
			if err != nil {
				break
			}
		}
		c.Write(binary.BigEndian.AppendUint64(nil, n))
		c.Close()
	}
}

// dpSourceRole sends DP_BYTES to DP_TARGET (through the SOCKS5 proxy at
// DP_SOCKS if set), half-closes, waits for the sink's count, and prints
// "DONE <seconds> <bytes counted by the sink>".
func dpSourceRole() error {
	size, err := strconv.ParseInt(os.Getenv("DP_BYTES"), 10, 64)
	if err != nil {
		return err
	}
	timeout, _ := time.ParseDuration(os.Getenv("DP_TIMEOUT"))
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	target := os.Getenv("DP_TARGET")
	start := time.Now()
	c, err := dpDialTarget(os.Getenv("DP_SOCKS"), target)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(start.Add(timeout))
	buf := make([]byte, 256<<10)
	for left := size; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return fmt.Errorf("after %d bytes: %w", size-left, err)
		}
		left -= n
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	var count [8]byte
	if _, err := io.ReadFull(c, count[:]); err != nil {
		return fmt.Errorf("waiting for the sink's count: %w", err)
	}
	fmt.Printf("DONE %.6f %d\n", time.Since(start).Seconds(), binary.BigEndian.Uint64(count[:]))
	return nil
}

// dpDialTarget connects directly, or through a SOCKS5 proxy (no auth,
// CONNECT to an IPv4 target).
func dpDialTarget(socks, target string) (net.Conn, error) {
	if socks == "" {
		return net.DialTimeout("tcp", target, 10*time.Second)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil || !ap.Addr().Is4() {
		return nil, fmt.Errorf("SOCKS target %q: want an IPv4 ip:port", target)
	}
	c, err := net.DialTimeout("tcp", socks, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, ap.Addr().AsSlice()...)
	req = binary.BigEndian.AppendUint16(req, ap.Port())
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var reply [2 + 10]byte
	if _, err := io.ReadFull(c, reply[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("SOCKS handshake: %w", err)
	}
	if reply[0] != 5 || reply[1] != 0 || reply[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("SOCKS refused: %v", reply)
	}
	c.SetDeadline(time.Time{})
	return c, nil
}
