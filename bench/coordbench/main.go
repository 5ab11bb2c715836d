// Command coordbench measures meshcoord at scale with simulated nodes: real
// HTTP registrations and map streams on loopback, no WireGuard.
//
// For each size (1 000 and 10 000 nodes by default) it starts a fresh
// meshcoord (the real binary, on a fresh SQLite file), registers the nodes
// (registration rate), connects every map stream, then churns: J joins
// (register + connect) and L leaves (logout) per second for a bounded time,
// while every connected node records when each delta reaches it. Each size
// runs twice (-policy both): without an access policy, and with one of
// -tags tags (policy.go: ci-NN → db-NN grants), which trims every map to
// the nodes it may reach. It prints, per size and policy, with the 10 000 /
// 1 000 ratio so growth is visible and the policy / no-policy ratio:
//
//   - registrations per second;
//
//   - the fan-out: how many peers each change reached;
//
//   - p50 / p99 of change → delta at a peer (every peer of every change),
//     and p50 / p99 / max of change → delta at the LAST peer;
//
//   - the coordinator's CPU (cores) during churn, its RSS and peak RSS, and
//     the other processes' CPU (the machine's noise).
//
//     go run ./bench/coordbench [-sizes 1000,10000] [-policy both|off|on] [-tags 100]
//     [-churn 10s] [-rate 50] [-runs 3]
//
// With -dbsize N it measures instead how large the database is after N
// joins and leaves (register, stream, logout), with any serve flags given
// as arguments:
//
//	go run ./bench/coordbench -dbsize 100000 [--event-retention 1m]
//
// A change's time is when the client started the operation (the register,
// stream open or logout request); a delta's time is when the simulated node
// read its line. Loopback only; bounded in count and time; never fails on
// speed.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	sizes := flag.String("sizes", "1000,10000", "node counts to measure, comma-separated")
	churnFor := flag.Duration("churn", 10*time.Second, "how long each churn phase lasts")
	rate := flag.Int("rate", 50, "joins per second and leaves per second during churn")
	runs := flag.Int("runs", 3, "churn windows per size (medians are reported)")
	bin := flag.String("meshcoord", "", "meshcoord binary (default: build ./cmd/meshcoord)")
	withPolicy := flag.String("policy", "both", "off (no access policy), on (a policy of -tags tags), or both, each size without then with")
	tags := flag.Int("tags", 100, "tags of the policy (even: ci-NN → db-NN pairs)")
	dbJoins := flag.Int("dbsize", 0, "instead: measure the database size after this many joins and leaves (serve flags may follow the arguments)")
	flag.Parse()

	raiseFileLimit()
	path := *bin
	if path == "" {
		dir, err := os.MkdirTemp("", "coordbench-bin-")
		if err != nil {
			fatal(err)
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "meshcoord")
		cmd := exec.Command("go", "build", "-trimpath", "-o", path, "./cmd/meshcoord")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fatal(fmt.Errorf("building meshcoord: %v\n%s", err, out))
		}
	}

	if *dbJoins > 0 {
		if err := dbSize(path, *dbJoins, flag.Args()); err != nil {
			fatal(err)
		}
		return
	}
	variants := map[string][]int{"off": {0}, "on": {*tags}, "both": {0, *tags}}[*withPolicy]
	if variants == nil {
		fatal(fmt.Errorf("-policy %q: want off, on or both", *withPolicy))
	}
	var results []result
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 || n > 20000 {
			fatal(fmt.Errorf("-sizes: %q is not a node count in [10, 20000]", s))
		}
		for _, t := range variants {
			fmt.Fprintf(os.Stderr, "== %d nodes, %s\n", n, policyName(t))
			r, err := runSize(path, n, *churnFor, *rate, *runs, t)
			if err != nil {
				fmt.Fprintf(os.Stderr, "coordbench: %d nodes, %s: %v\n", n, policyName(t), err)
				continue
			}
			results = append(results, r)
		}
	}
	printTable(results, *rate, *churnFor, *runs)
}

func policyName(tags int) string {
	if tags == 0 {
		return "no policy"
	}
	return fmt.Sprintf("policy of %d tags", tags)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "coordbench:", err)
	os.Exit(1)
}

// raiseFileLimit lifts the open-file limit as far as allowed: every
// simulated node holds a stream, on both sides (the server inherits it).
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) != nil {
		return
	}
	want := lim
	want.Cur, want.Max = 1<<17, 1<<17
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}

type result struct {
	nodes       int
	tags        int           // 0: no policy
	fanout      float64       // peers reached per change
	regRate     float64       // registrations per second
	setup       time.Duration // connecting every stream
	p50, p99    time.Duration // change -> delta at a peer
	allP50      time.Duration // change -> delta at the last peer
	allP99      time.Duration
	allMax      time.Duration
	changes     int     // changes measured (median run)
	deliveries  int64   // (change, peer) pairs measured
	missing     int64   // deltas a peer connected throughout never got
	cpuCores    float64 // coordinator CPU during churn
	rssMiB      float64 // coordinator RSS after churn
	peakRSSMiB  float64
	benchCores  float64 // this process (the simulated nodes) during churn
	otherCores  float64 // everything else on the machine during churn (noise)
	windowsUsed int
}

func printTable(rs []result, rate int, churn time.Duration, runs int) {
	fmt.Printf("\ncoordinator scale: simulated nodes on loopback, churn %d joins + %d leaves per second, %v per window, median of %d windows\n\n",
		rate, rate, churn, runs)
	fmt.Printf("%-7s %-7s %9s %8s %9s %9s %9s %11s %11s %11s %9s %10s %9s %9s %8s %10s\n",
		"nodes", "policy", "reg/s", "setup", "fan-out", "p50 peer", "p99 peer", "p50 all", "p99 all", "max all", "missing", "coord CPU", "RSS MiB", "peak MiB", "sim CPU", "other CPU")
	for _, r := range rs {
		pol := "none"
		if r.tags > 0 {
			pol = fmt.Sprintf("%d tags", r.tags)
		}
		fmt.Printf("%-7d %-7s %9.0f %8s %9.1f %9s %9s %11s %11s %11s %9d %10.2f %9.0f %9.0f %8.2f %10.2f\n",
			r.nodes, pol, r.regRate, r.setup.Round(100*time.Millisecond), r.fanout, ms(r.p50), ms(r.p99), ms(r.allP50), ms(r.allP99), ms(r.allMax),
			r.missing, r.cpuCores, r.rssMiB, r.peakRSSMiB, r.benchCores, r.otherCores)
	}
	for _, withPolicy := range []bool{false, true} {
		var same []result
		for _, r := range rs {
			if (r.tags > 0) == withPolicy {
				same = append(same, r)
			}
		}
		if len(same) < 2 {
			continue
		}
		sort.Slice(same, func(i, j int) bool { return same[i].nodes < same[j].nodes })
		a, b := same[0], same[len(same)-1]
		fmt.Printf("\nratio %d/%d nodes, %s (baseline: the %d-node run of this same invocation):\n", b.nodes, a.nodes, policyName(a.tags), a.nodes)
		fmt.Printf("  reg/s %.2f   fan-out %.2f   p50 peer %.2f   p99 peer %.2f   p99 all %.2f   coord CPU %.2f   RSS %.2f\n",
			b.regRate/a.regRate, b.fanout/nz(a.fanout), ratio(b.p50, a.p50), ratio(b.p99, a.p99), ratio(b.allP99, a.allP99),
			b.cpuCores/nz(a.cpuCores), b.rssMiB/nz(a.rssMiB))
	}
	for _, p := range rs {
		if p.tags == 0 {
			continue
		}
		for _, a := range rs {
			if a.tags == 0 && a.nodes == p.nodes {
				fmt.Printf("\nratio policy / no policy, %d nodes (baseline: the run without a policy of this same invocation):\n", p.nodes)
				fmt.Printf("  fan-out %.4f   p50 peer %.2f   p99 peer %.2f   p99 all %.2f   coord CPU %.2f   RSS %.2f\n",
					p.fanout/nz(a.fanout), ratio(p.p50, a.p50), ratio(p.p99, a.p99), ratio(p.allP99, a.allP99),
					p.cpuCores/nz(a.cpuCores), p.rssMiB/nz(a.rssMiB))
			}
		}
	}
	fmt.Println("\n(reg/s: registrations answered per second, 16 concurrent clients; setup: opening every stream;" +
		" fan-out: peers each change reached; peer: change -> delta at one peer, all: -> at the last peer;" +
		" missing: deltas a stable peer that should have seen them never got;" +
		" CPU in cores of this 2-core box during churn; sim: the simulated nodes' own process;" +
		" other: the rest of the machine, noise that inflates latency when high;" +
		" policy: tags/2 pairs ci-NN -> db-NN tcp:5432, one tag per node, so a map holds about nodes/tags peers)")
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

func ratio(a, b time.Duration) float64 { return float64(a) / nz(float64(b)) }

func nz(f float64) float64 {
	if f == 0 {
		return 1
	}
	return f
}
