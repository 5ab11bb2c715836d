package main

// The data plane half of meshbench: TCP throughput through the mesh against
// plain TCP measured in the same run, and the nodes' peak memory.
//
//   userspace: app → SOCKS5 proxy of node A → netstack → WireGuard → UDP over
//              loopback → node B → netstack → forwarded to 127.0.0.1:sink
//   tun:       (root) app in netns A → kernel TUN → node A → UDP over a veth
//              with 198.18.0.0/15 addresses → node B in netns B → TUN → sink
//
// Each run starts fresh node processes (so their peak RSS is that run's),
// moves one transfer of -dp-size bytes each way it measures, alternating
// with the baseline, and the table shows medians. A transfer is bounded by
// -dp-timeout; nothing here fails on speed.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var (
	dpSize     = flag.Int64("dp-size", 512<<20, "bytes per measured transfer")
	dpRuns     = flag.Int("dp-runs", 5, "measured runs of the throughput part (it ignores -runs: each run moves -dp-size bytes per path)")
	dpMTU      = flag.Int("dp-mtu", 0, "tunnel MTU (0: the data plane's default)")
	dpMemLimit = flag.Int("dp-memlimit", 128, "node GOMEMLIMIT in MiB (0: none), as meshinit sets it by default")
	dpTimeout  = flag.Duration("dp-timeout", 2*time.Minute, "bound on one transfer")
	dpModes    = flag.String("dp-modes", "userspace,policy,reference,tun", "modes to measure: userspace (ours), policy (ours with an access policy in force against without), reference (wireguard-go's tun/netstack, for comparison), tun (needs root)")
)

func init() {
	addPart(part{name: "throughput", order: 20, run: runThroughput})
}

// dpTransfer is one measured transfer.
type dpTransfer struct {
	seconds float64
	bytes   int64
}

func (t dpTransfer) rate() float64 { return float64(t.bytes) / t.seconds / (1 << 20) } // MiB/s

// dpUsage is what a node process used over one run.
type dpUsage struct {
	maxRSSKiB int64
	cpu       time.Duration
}

func runThroughput(_ binaries, _ int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Printf("\n## data plane throughput (%d MiB per transfer, %d runs, MTU %s, node GOMEMLIMIT %s)\n",
		*dpSize>>20, *dpRuns, dpOrDefault(*dpMTU, "default"), dpOrDefault(*dpMemLimit, "off"))
	var errs []error
	for _, mode := range strings.Split(*dpModes, ",") {
		var err error
		switch strings.TrimSpace(mode) {
		case "userspace":
			err = dpBenchUserspace(self, "node")
		case "policy":
			err = dpBenchPolicy(self)
		case "reference":
			err = dpBenchUserspace(self, "reference-node")
		case "tun":
			if os.Geteuid() != 0 {
				fmt.Println("\ntun: skipped (needs root for network namespaces and TUN devices)")
				continue
			}
			err = dpBenchTUN(self)
		default:
			err = fmt.Errorf("unknown mode %q", mode)
		}
		if err != nil {
			fmt.Printf("\n%s: could not run: %v\n", mode, err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func dpOrDefault(v int, zero string) string {
	if v == 0 {
		return zero
	}
	return strconv.Itoa(v)
}

// ---- userspace ----

func dpBenchUserspace(self, role string) error {
	var base, mesh []dpTransfer
	var usage []dpUsage
	for run := range *dpRuns {
		b, m, u, err := dpUserspaceRun(self, role)
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		base, mesh, usage = append(base, b), append(mesh, m), append(usage, u...)
		fmt.Printf("  run %d: loopback %.0f MiB/s, mesh %.0f MiB/s (ratio %.3f)\n", run+1, b.rate(), m.rate(), m.rate()/b.rate())
	}
	title := "userspace (our netstack glue, through the SOCKS5 proxy)"
	if role != "node" {
		title = "reference: wireguard-go's tun/netstack, same proxy and forwarding"
	}
	dpPrintTable(title, "plain TCP over loopback", base, mesh, usage)
	return nil
}

func dpUserspaceRun(self, role string) (base, mesh dpTransfer, usage []dpUsage, err error) {
	sink, sinkPort, err := dpStartSink(self, nil, "127.0.0.1:0")
	if err != nil {
		return
	}
	defer sink.stop()
	a, b, err := dpStartNodePair(self, role, nil, nil, "127.0.0.1", "127.0.0.1", true, sinkPort)
	if err != nil {
		return
	}
	defer a.stop()
	defer b.stop()
	meshTarget := fmt.Sprintf("100.64.0.2:%d", sinkPort)
	// Warm up: handshake, first connection (not measured).
	if _, err = dpRunSource(self, nil, meshTarget, a.proxy, 1<<20); err != nil {
		return base, mesh, nil, fmt.Errorf("warm-up through the mesh: %w", err)
	}
	if base, err = dpRunSource(self, nil, fmt.Sprintf("127.0.0.1:%d", sinkPort), "", *dpSize); err != nil {
		return
	}
	if mesh, err = dpRunSource(self, nil, meshTarget, a.proxy, *dpSize); err != nil {
		return
	}
	ua, errA := a.stop()
	ub, errB := b.stop()
	return base, mesh, []dpUsage{ua, ub}, errors.Join(errA, errB)
}

// ---- TUN ----

func dpBenchTUN(self string) error {
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		return fmt.Errorf("ip(8) not found: %w", err)
	}
	id := strconv.Itoa(os.Getpid())
	nsA, nsB := "mbench-a-"+id, "mbench-b-"+id
	defer exec.Command(ipCmd, "netns", "del", nsA).Run()
	defer exec.Command(ipCmd, "netns", "del", nsB).Run()
	veth := "mbv" + id
	if len(veth) > 13 {
		veth = veth[:13]
	}
	setup := [][]string{
		{"netns", "add", nsA}, {"netns", "add", nsB},
		{"link", "add", veth + "a", "netns", nsA, "type", "veth", "peer", "name", veth + "b", "netns", nsB},
		{"-n", nsA, "addr", "add", "198.18.6.1/24", "dev", veth + "a"},
		{"-n", nsB, "addr", "add", "198.18.6.2/24", "dev", veth + "b"},
		{"-n", nsA, "link", "set", veth + "a", "up"}, {"-n", nsB, "link", "set", veth + "b", "up"},
		{"-n", nsA, "link", "set", "lo", "up"}, {"-n", nsB, "link", "set", "lo", "up"},
	}
	for _, args := range setup {
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	inA, inB := []string{ipCmd, "netns", "exec", nsA}, []string{ipCmd, "netns", "exec", nsB}

	var loop, veths, mesh []dpTransfer
	var usage []dpUsage
	for run := range *dpRuns {
		l, v, m, u, err := dpTUNRun(self, inA, inB)
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		loop, veths, mesh, usage = append(loop, l), append(veths, v), append(mesh, m), append(usage, u...)
		fmt.Printf("  run %d: loopback %.0f MiB/s, veth %.0f MiB/s, mesh %.0f MiB/s (ratio %.3f)\n", run+1, l.rate(), v.rate(), m.rate(), m.rate()/l.rate())
	}
	dpPrintTable("tun (kernel TUN in two network namespaces)", "plain TCP over loopback", loop, mesh, usage)
	fmt.Printf("  against plain TCP over the same veth: median %.0f MiB/s, mesh/veth %.3f\n", median(dpRates(veths)), median(dpRates(mesh))/median(dpRates(veths)))
	return nil
}

func dpTUNRun(self string, inA, inB []string) (loop, veth, mesh dpTransfer, usage []dpUsage, err error) {
	sink, sinkPort, err := dpStartSink(self, inB, "0.0.0.0:0")
	if err != nil {
		return
	}
	defer sink.stop()
	a, b, err := dpStartNodePair(self, "node", inA, inB, "198.18.6.1", "198.18.6.2", false, sinkPort)
	if err != nil {
		return
	}
	defer a.stop()
	defer b.stop()
	meshTarget := fmt.Sprintf("100.64.0.2:%d", sinkPort)
	if _, err = dpRunSource(self, inA, meshTarget, "", 1<<20); err != nil {
		err = fmt.Errorf("warm-up through the mesh: %w", err)
		return
	}
	if loop, err = dpLoopbackTransfer(self, inB); err != nil {
		return
	}
	if veth, err = dpRunSource(self, inA, fmt.Sprintf("198.18.6.2:%d", sinkPort), "", *dpSize); err != nil {
		return
	}
	if mesh, err = dpRunSource(self, inA, meshTarget, "", *dpSize); err != nil {
		return
	}
	ua, errA := a.stop()
	ub, errB := b.stop()
	return loop, veth, mesh, []dpUsage{ua, ub}, errors.Join(errA, errB)
}

// dpLoopbackTransfer measures plain TCP over loopback inside a namespace.
func dpLoopbackTransfer(self string, in []string) (dpTransfer, error) {
	sink, port, err := dpStartSink(self, in, "127.0.0.1:0")
	if err != nil {
		return dpTransfer{}, err
	}
	defer sink.stop()
	return dpRunSource(self, in, fmt.Sprintf("127.0.0.1:%d", port), "", *dpSize)
}

// dpStartSink starts a sink listening on listen (under the wrapper command
// in, if given) and returns it with the port it took.
func dpStartSink(self string, in []string, listen string) (*dpProc, int, error) {
	sink, err := dpStartRole(self, in, "sink", "DP_LISTEN="+listen)
	if err != nil {
		return nil, 0, err
	}
	var port int
	if _, err := fmt.Sscanf(sink.first, "PORT %d", &port); err != nil {
		sink.stop()
		return nil, 0, fmt.Errorf("sink said %q: %w", sink.first, err)
	}
	return sink, port, nil
}

// ---- processes ----

// dpProc is a running role process.
type dpProc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	first string // its first output line
	proxy string // nodes: the proxy address
	done  bool
}

// dpStartRole runs this binary as role, under the wrapper command in (e.g.
// ip netns exec ns) if given, and reads its first line.
func dpStartRole(self string, in []string, role string, env ...string) (*dpProc, error) {
	argv := append(append([]string(nil), in...), self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), dpRoleEnv+"="+role), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &dpProc{cmd: cmd, in: stdin, out: bufio.NewReader(stdout)}
	if p.first, err = p.line(30 * time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%s did not start: %w", role, err)
	}
	return p, nil
}

func (p *dpProc) line(timeout time.Duration) (string, error) {
	ch := make(chan string, 1)
	errc := make(chan error, 1)
	go func() {
		s, err := p.out.ReadString('\n')
		if err != nil {
			errc <- err
			return
		}
		ch <- strings.TrimSpace(s)
	}()
	select {
	case s := <-ch:
		return s, nil
	case err := <-errc:
		return "", err
	case <-time.After(timeout):
		return "", fmt.Errorf("no output within %v", timeout)
	}
}

// stop ends the process (EOF on stdin, then a kill after 10 s) and
// returns what it used.
func (p *dpProc) stop() (dpUsage, error) {
	if p.done {
		return dpUsage{}, nil
	}
	p.done = true
	p.in.Close()
	// A node says its peak RSS as its last line.
	var u dpUsage
	for {
		s, err := p.line(10 * time.Second)
		if err != nil {
			break
		}
		if v, ok := strings.CutPrefix(s, "RSS "); ok {
			u.maxRSSKiB, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		err = fmt.Errorf("did not exit on EOF: %v", <-done)
	}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return u, err
}

// dpStartNodePair starts nodes A (100.64.0.1) and B (100.64.0.2), makes them
// peers over UDP at the given underlay addresses, A with the proxy; envB is
// more of B's environment.
func dpStartNodePair(self, role string, inA, inB []string, underA, underB string, userspace bool, forwardPort int, envB ...string) (a, b *dpProc, err error) {
	mode := "tun"
	if userspace {
		mode = "userspace"
	}
	common := []string{"DP_MODE=" + mode, "DP_MTU=" + strconv.Itoa(*dpMTU), "DP_MEMLIMIT_MIB=" + strconv.Itoa(*dpMemLimit),
		"DP_FORWARD_PORT=" + strconv.Itoa(forwardPort)}
	if a, err = dpStartRole(self, inA, role, append(common, "DP_ADDR=100.64.0.1", "DP_PROXY=1")...); err != nil {
		return nil, nil, err
	}
	if b, err = dpStartRole(self, inB, role, append(append(common, "DP_ADDR=100.64.0.2"), envB...)...); err != nil {
		a.stop()
		return nil, nil, err
	}
	var keyA, keyB string
	var portA, portB int
	if _, err = fmt.Sscanf(a.first, "UP %s %d %s", &keyA, &portA, &a.proxy); err == nil {
		_, err = fmt.Sscanf(b.first, "UP %s %d %s", &keyB, &portB, &b.proxy)
	}
	if err == nil {
		err = a.peer(keyB, "100.64.0.2", fmt.Sprintf("%s:%d", underB, portB))
	}
	if err == nil {
		err = b.peer(keyA, "100.64.0.1", fmt.Sprintf("%s:%d", underA, portA))
	}
	if err != nil {
		a.stop()
		b.stop()
		return nil, nil, fmt.Errorf("pairing nodes: %w", err)
	}
	return a, b, nil
}

func (p *dpProc) peer(key, ip, endpoint string) error {
	if _, err := fmt.Fprintf(p.in, "PEER %s %s %s\n", key, ip, endpoint); err != nil {
		return err
	}
	s, err := p.line(10 * time.Second)
	if err == nil && s != "OK" {
		err = errors.New(s)
	}
	return err
}

// dpRunSource moves size bytes to target (through the SOCKS5 proxy socks if
// set) and returns the transfer as the source timed it.
func dpRunSource(self string, in []string, target, socks string, size int64) (dpTransfer, error) {
	argv := append(append([]string(nil), in...), self)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), dpRoleEnv+"=source", "DP_TARGET="+target, "DP_SOCKS="+socks,
		"DP_BYTES="+strconv.FormatInt(size, 10), "DP_TIMEOUT="+dpTimeout.String())
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return dpTransfer{}, fmt.Errorf("source to %s: %v: %s", target, err, ee.Stderr)
		}
		return dpTransfer{}, err
	}
	var t dpTransfer
	if _, err := fmt.Sscanf(string(out), "DONE %f %d", &t.seconds, &t.bytes); err != nil {
		return dpTransfer{}, fmt.Errorf("source output %q: %w", out, err)
	}
	if t.bytes != size {
		return t, fmt.Errorf("sink counted %d bytes, source sent %d", t.bytes, size)
	}
	return t, nil
}

// ---- reporting ----

func dpRates(ts []dpTransfer) []float64 {
	r := make([]float64, len(ts))
	for i, t := range ts {
		r[i] = t.rate()
	}
	return r
}

func dpPrintTable(title, baseName string, base, mesh []dpTransfer, usage []dpUsage) {
	ratios := make([]float64, len(base))
	for i := range base {
		ratios[i] = mesh[i].rate() / base[i].rate()
	}
	var rss, cpuPerGiB []float64
	for i, u := range usage {
		rss = append(rss, float64(u.maxRSSKiB)/1024)
		run := mesh[i/2]
		cpuPerGiB = append(cpuPerGiB, u.cpu.Seconds()/(float64(run.bytes)/(1<<30)))
	}
	fmt.Printf("\n%s\n", title)
	fmt.Printf("  %-34s %10s\n", "", "median")
	fmt.Printf("  %-34s %7.0f MiB/s\n", baseName, median(dpRates(base)))
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the mesh", median(dpRates(mesh)))
	fmt.Printf("  %-34s %10.3f   (per run: %s)\n", "ratio mesh / baseline", median(ratios), dpFmtList(ratios, "%.3f"))
	fmt.Printf("  %-34s %7.0f MiB   (max %.0f MiB)\n", "node peak RSS", median(rss), slices.Max(rss))
	fmt.Printf("  %-34s %7.2f s     (CPU of one node per GiB moved, whole run)\n", "node CPU", median(cpuPerGiB))
}

func dpFmtList(v []float64, format string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(s, " ")
}
