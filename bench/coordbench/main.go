// Command coordbench measures meshcoord at scale with simulated nodes: real
// HTTP registrations and map streams on loopback, no WireGuard.
//
// For each size (1 000 and 10 000 nodes by default) it starts a fresh
// meshcoord (the real binary, on a fresh SQLite file), registers the nodes
// (registration rate), connects every map stream, then churns: J joins
// (register + connect) and L leaves (logout) per second for a bounded time,
// while every connected node records when each delta reaches it. It prints,
// per size and with the 10 000 / 1 000 ratio so growth is visible:
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
//     go run ./bench/coordbench [-sizes 1000,10000] [-churn 10s] [-rate 50] [-runs 3] [-db sqlite,postgres]
//     [-replicas 1,3] [-policy both|off|on] [-tags 100]
//
// -db lists the databases to measure, each on the same sizes in the same
// run: sqlite (a fresh file) and postgres (a fresh database on a private
// PostgreSQL server that scripts/postgres.sh starts, with its durable
// defaults); the table then also gives each one's ratio to SQLite.
// -replicas lists how many meshcoord replicas serve the PostgreSQL
// database, each count measured in turn (docs/replicas.md): node i uses
// replica i mod R for every call, so registrations and streams are spread
// evenly, and every delta about a change made on one replica is timed at
// peers streaming on all of them. CPU is then per replica (the mean).
//
// -policy both (the default) measures each size of the first -db database
// again with an access policy of -tags tags in force (policy.go: ci-NN →
// db-NN grants), which trims every map to the nodes it may reach, and
// gives the policy / no-policy ratio of the same invocation; on measures
// only with it, off only without.
//
// With -dbsize N it measures instead how large the database is after N
// joins and leaves (register, stream, logout), with any serve flags given
// as arguments:
//
//	go run ./bench/coordbench -dbsize 100000 [-- --event-retention 1m]
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
	dbs := flag.String("db", "sqlite,postgres", "databases to measure, comma-separated: sqlite, postgres")
	replicaCounts := flag.String("replicas", "1,3", "with postgres: how many replicas serve the database, comma-separated counts measured in turn")
	withPolicy := flag.String("policy", "both", "off (no access policy), on (a policy of -tags tags), or both: each size of the first -db without, then with")
	tags := flag.Int("tags", 100, "tags of the policy (even: ci-NN → db-NN pairs)")
	dbJoins := flag.Int("dbsize", 0, "instead: measure the database size after this many joins and leaves (serve flags may follow, after --)")
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
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 || n > 20000 {
			fatal(fmt.Errorf("-sizes: %q is not a node count in [10, 20000]", s))
		}
		ns = append(ns, n)
	}
	var reps []int
	for _, s := range strings.Split(*replicaCounts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 9 {
			fatal(fmt.Errorf("-replicas: %q is not a replica count in [1, 9]", s))
		}
		reps = append(reps, n)
	}
	variants := map[string][]int{"off": {0}, "on": {*tags}, "both": {0, *tags}}[*withPolicy]
	if variants == nil {
		fatal(fmt.Errorf("-policy %q: want off, on or both", *withPolicy))
	}
	var results []result
	for i, db := range strings.Split(*dbs, ",") {
		vs := variants
		if i > 0 && len(vs) > 1 {
			vs = vs[:1] // the policy's figures do not depend on the store: measured on the first
		}
		rs, err := runDB(strings.TrimSpace(db), path, ns, vs, reps, *churnFor, *rate, *runs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "coordbench: %s: %v\n", db, err)
		}
		results = append(results, rs...)
	}
	printTable(results, *rate, *churnFor, *runs)
	for _, r := range results {
		if r.failed > 0 {
			fmt.Printf("\n%s, %d nodes, %s: %d churn operations failed in the median window (counted, not measured)\n", r.db, r.nodes, policyName(r.tags), r.failed)
		}
	}
	if n := transportRetries.Load(); n > 0 {
		fmt.Printf("\n%d register or logout calls got no answer (the connection closed under them) and were sent again\n", n)
	}
}

// dbCPU returns the CPU time the database server used so far (none for
// SQLite, which lives in the coordinator's process).
var dbCPU = noDBCPU

func noDBCPU() time.Duration { return 0 }

// runDB measures every size on one kind of database, with each policy
// variant (the number of tags, 0 for no policy).
func runDB(db, bin string, sizes, variants, replicas []int, churnFor time.Duration, rate, runs int) ([]result, error) {
	var serveArgs func() ([]string, error)
	switch db {
	case "sqlite":
		serveArgs = func() ([]string, error) { return nil, nil } // the server's own fresh file
		replicas = []int{1}
	case "postgres":
		pg, err := startPostgres()
		if err != nil {
			return nil, err
		}
		defer pg.remove()
		dbCPU = pg.cpu
		defer func() { dbCPU = noDBCPU }()
		serveArgs = func() ([]string, error) {
			u, err := pg.newDatabase()
			return []string{"--db", u}, err
		}
	default:
		return nil, fmt.Errorf("-db: unknown database %q (want sqlite or postgres)", db)
	}
	var out []result
	for _, reps := range replicas {
		for _, n := range sizes {
			for i, tags := range variants {
				if i > 0 && reps > 1 {
					continue // the policy's figures: measured with one replica
				}
				name := dbName(db, reps)
				fmt.Fprintf(os.Stderr, "== %s, %d nodes, %s\n", name, n, policyName(tags))
				args, err := serveArgs()
				if err != nil {
					return out, err
				}
				r, err := runSize(bin, n, churnFor, rate, runs, tags, reps, args...)
				if err != nil {
					fmt.Fprintf(os.Stderr, "coordbench: %s, %d nodes, %s: %v\n", name, n, policyName(tags), err)
					continue
				}
				r.db = name
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// dbName labels a database measured with reps replicas.
func dbName(db string, reps int) string {
	if reps == 1 {
		return db
	}
	return fmt.Sprintf("%s:%d", db, reps)
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
	db          string // sqlite, postgres, postgres:3 (3 replicas)
	replicas    int
	nodes       int
	tags        int           // of the policy; 0: no policy
	failed      int64         // churn operations that failed (at most 1 %)
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
	cpuCores    float64 // coordinator CPU during churn (per replica: the mean)
	rssMiB      float64 // coordinator RSS after churn (the largest replica)
	peakRSSMiB  float64
	dbCores     float64 // the database server (PostgreSQL) during churn
	benchCores  float64 // this process (the simulated nodes) during churn
	otherCores  float64 // everything else on the machine during churn (noise)
	windowsUsed int
}

func printTable(rs []result, rate int, churn time.Duration, runs int) {
	fmt.Printf("\ncoordinator scale: simulated nodes on loopback, churn %d joins + %d leaves per second, %v per window, median of %d windows\n\n",
		rate, rate, churn, runs)
	fmt.Printf("%-11s %-7s %-8s %9s %8s %8s %9s %9s %11s %11s %11s %9s %10s %9s %9s %7s %8s %10s\n",
		"db", "nodes", "policy", "reg/s", "setup", "fan-out", "p50 peer", "p99 peer", "p50 all", "p99 all", "max all", "missing", "coord CPU", "RSS MiB", "peak MiB", "db CPU", "sim CPU", "other CPU")
	for _, r := range rs {
		fmt.Printf("%-11s %-7d %-8s %9.0f %8s %8.1f %9s %9s %11s %11s %11s %9d %10.2f %9.0f %9.0f %7.2f %8.2f %10.2f\n",
			r.db, r.nodes, policyColumn(r.tags), r.regRate, r.setup.Round(100*time.Millisecond), r.fanout, ms(r.p50), ms(r.p99), ms(r.allP50), ms(r.allP99), ms(r.allMax),
			r.missing, r.cpuCores, r.rssMiB, r.peakRSSMiB, r.dbCores, r.benchCores, r.otherCores)
	}
	type group struct {
		db   string
		tags int
	}
	groups := map[group][]result{}
	var order []group
	for _, r := range rs {
		g := group{r.db, r.tags}
		if groups[g] == nil {
			order = append(order, g)
		}
		groups[g] = append(groups[g], r)
	}
	for _, g := range order {
		rs := groups[g]
		if len(rs) < 2 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].nodes < rs[j].nodes })
		a, b := rs[0], rs[len(rs)-1]
		fmt.Printf("\n%s, %s, ratio %d/%d nodes (baseline: the %d-node run of this same invocation):\n", g.db, policyName(g.tags), b.nodes, a.nodes, a.nodes)
		printRatios(b, a, true)
	}
	for _, r := range rs {
		for _, base := range rs {
			switch {
			case r.tags == 0 && r.db != "sqlite" && base.db == "sqlite" && base.tags == 0 && base.nodes == r.nodes:
				fmt.Printf("\n%s / sqlite at %d nodes (baseline: the SQLite run of this same invocation):\n", r.db, r.nodes)
			case r.tags > 0 && base.tags == 0 && base.db == r.db && base.nodes == r.nodes:
				fmt.Printf("\n%s, policy / no policy at %d nodes (baseline: the run without a policy of this same invocation):\n", r.db, r.nodes)
			default:
				continue
			}
			printRatios(r, base, r.tags > 0)
		}
	}
	fmt.Println("\n(reg/s: registrations answered per second, 16 concurrent clients; setup: opening every stream;" +
		" fan-out: peers each change reached; peer: change -> delta at one peer, all: -> at the last peer;" +
		" missing: deltas a stable peer that should have seen them never got;" +
		" CPU in cores of this box during churn (coord: meshcoord, per replica with several; db: the PostgreSQL server);" +
		" sim: the simulated nodes' own process;" +
		" other: the rest of the machine, noise that inflates latency when high;" +
		" policy: tags/2 pairs ci-NN -> db-NN tcp:5432, one tag per node, so a map holds about nodes/tags peers)")
}

func policyColumn(tags int) string {
	if tags == 0 {
		return "none"
	}
	return fmt.Sprintf("%d tags", tags)
}

// printRatios prints r's figures over base's.
func printRatios(r, base result, fanout bool) {
	fo := ""
	if fanout {
		fo = fmt.Sprintf("   fan-out %.4f", r.fanout/nz(base.fanout))
	}
	fmt.Printf("  reg/s %.2f%s   p50 peer %.2f   p99 peer %.2f   p99 all %.2f   coord CPU %.2f   RSS %.2f\n",
		r.regRate/base.regRate, fo, ratio(r.p50, base.p50), ratio(r.p99, base.p99), ratio(r.allP99, base.allP99),
		r.cpuCores/nz(base.cpuCores), r.rssMiB/nz(base.rssMiB))
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
