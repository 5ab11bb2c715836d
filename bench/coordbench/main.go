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
//   - p50 / p99 of change → delta at a peer (every peer of every change),
//     and p50 / p99 / max of change → delta at the LAST peer;
//
//   - the coordinator's CPU (cores) during churn, its RSS and peak RSS.
//
//     go run ./bench/coordbench [-sizes 1000,10000] [-churn 10s] [-rate 50] [-runs 3] [-db sqlite,postgres]
//
// -db lists the databases to measure, each on the same sizes in the same
// run: sqlite (a fresh file) and postgres (a fresh database on a private
// PostgreSQL server that scripts/postgres.sh starts, with its durable
// defaults); the table then also gives each one's ratio to SQLite.
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
	var results []result
	for _, db := range strings.Split(*dbs, ",") {
		rs, err := runDB(strings.TrimSpace(db), path, ns, *churnFor, *rate, *runs)
		if err != nil {
			fmt.Fprintf(os.Stderr, "coordbench: %s: %v\n", db, err)
		}
		results = append(results, rs...)
	}
	printTable(results, *rate, *churnFor, *runs)
}

// dbCPU returns the CPU time the database server used so far (none for
// SQLite, which lives in the coordinator's process).
var dbCPU = noDBCPU

func noDBCPU() time.Duration { return 0 }

// runDB measures every size on one kind of database.
func runDB(db, bin string, sizes []int, churnFor time.Duration, rate, runs int) ([]result, error) {
	var serveArgs func() ([]string, error)
	switch db {
	case "sqlite":
		serveArgs = func() ([]string, error) { return nil, nil } // the server's own fresh file
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
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "== %s, %d nodes\n", db, n)
		args, err := serveArgs()
		if err != nil {
			return out, err
		}
		r, err := runSize(bin, n, churnFor, rate, runs, args...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "coordbench: %s, %d nodes: %v\n", db, n, err)
			continue
		}
		r.db = db
		out = append(out, r)
	}
	return out, nil
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
	db          string // sqlite, postgres
	nodes       int
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
	dbCores     float64 // the database server (PostgreSQL) during churn
	benchCores  float64 // this process (the simulated nodes) during churn
	otherCores  float64 // everything else on the machine during churn (noise)
	windowsUsed int
}

func printTable(rs []result, rate int, churn time.Duration, runs int) {
	fmt.Printf("\ncoordinator scale: simulated nodes on loopback, churn %d joins + %d leaves per second, %v per window, median of %d windows\n\n",
		rate, rate, churn, runs)
	fmt.Printf("%-9s %-7s %9s %8s %9s %9s %11s %11s %11s %9s %10s %9s %9s %7s %8s %10s\n",
		"db", "nodes", "reg/s", "setup", "p50 peer", "p99 peer", "p50 all", "p99 all", "max all", "missing", "coord CPU", "RSS MiB", "peak MiB", "db CPU", "sim CPU", "other CPU")
	for _, r := range rs {
		fmt.Printf("%-9s %-7d %9.0f %8s %9s %9s %11s %11s %11s %9d %10.2f %9.0f %9.0f %7.2f %8.2f %10.2f\n",
			r.db, r.nodes, r.regRate, r.setup.Round(100*time.Millisecond), ms(r.p50), ms(r.p99), ms(r.allP50), ms(r.allP99), ms(r.allMax),
			r.missing, r.cpuCores, r.rssMiB, r.peakRSSMiB, r.dbCores, r.benchCores, r.otherCores)
	}
	byDB := map[string][]result{}
	for _, r := range rs {
		byDB[r.db] = append(byDB[r.db], r)
	}
	for _, db := range []string{"sqlite", "postgres"} {
		rs := byDB[db]
		if len(rs) < 2 {
			continue
		}
		sort.Slice(rs, func(i, j int) bool { return rs[i].nodes < rs[j].nodes })
		a, b := rs[0], rs[len(rs)-1]
		fmt.Printf("\n%s, ratio %d/%d nodes (baseline: the %d-node run of this same invocation):\n", db, b.nodes, a.nodes, a.nodes)
		fmt.Printf("  reg/s %.2f   p50 peer %.2f   p99 peer %.2f   p99 all %.2f   coord CPU %.2f   RSS %.2f\n",
			b.regRate/a.regRate, ratio(b.p50, a.p50), ratio(b.p99, a.p99), ratio(b.allP99, a.allP99),
			b.cpuCores/nz(a.cpuCores), b.rssMiB/nz(a.rssMiB))
	}
	for _, r := range rs {
		if r.db == "sqlite" {
			continue
		}
		for _, base := range byDB["sqlite"] {
			if base.nodes != r.nodes {
				continue
			}
			fmt.Printf("\n%s / sqlite at %d nodes (baseline: the SQLite run of this same invocation):\n", r.db, r.nodes)
			fmt.Printf("  reg/s %.2f   p50 peer %.2f   p99 peer %.2f   p99 all %.2f   coord CPU %.2f   RSS %.2f\n",
				r.regRate/base.regRate, ratio(r.p50, base.p50), ratio(r.p99, base.p99), ratio(r.allP99, base.allP99),
				r.cpuCores/nz(base.cpuCores), r.rssMiB/nz(base.rssMiB))
		}
	}
	fmt.Println("\n(reg/s: registrations answered per second, 16 concurrent clients; setup: opening every stream;" +
		" peer: change -> delta at one peer, all: -> at the last peer;" +
		" CPU in cores of this 2-core box during churn (coord: meshcoord; db: the PostgreSQL server);" +
		" sim: the simulated nodes' own process;" +
		" other: the rest of the machine, noise that inflates latency when high)")
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
