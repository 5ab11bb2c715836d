// Command meshbench measures the mesh node inside meshinit, each part
// against a baseline measured in the same run, median of several runs:
//
//   - lifecycle (lifecycle.go): exec → app running with the mesh up (join),
//     and stop signal / app exit → node deleted at the coordinator;
//
//   - hung (hung.go): stop signal → meshinit exited when the coordinator
//     stops answering, alone and with a "meshinit logout" stuck on it;
//
//   - the data plane's throughput and memory, in the data plane's own file;
//
//   - names (names.go): the mesh resolver's answer latency against a
//     caching dnsmasq, and MESH_CONNECT's throughput against the SOCKS5
//     proxy.
//
//     go run ./bench/meshbench [-runs 15] [-only lifecycle]
//
// It builds meshinit, meshcoord and meshdemo itself (static, into a temp
// dir), uses loopback only, and never fails on speed: a part that cannot
// run says why and the others still run.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// binaries are the programs the parts run.
type binaries struct {
	meshinit, meshcoord, meshdemo string
}

// part is one section of the benchmark. Files of this package add theirs
// with addPart from an init function, so each owns its section.
type part struct {
	name  string
	order int // lower runs first
	run   func(b binaries, runs int) error
}

var parts []part

func addPart(p part) { parts = append(parts, p) }

func init() {
	addPart(part{name: "lifecycle", order: 10, run: runLifecycle})
}

func main() {
	runs := flag.Int("runs", 15, "measured runs per measure (medians are reported)")
	only := flag.String("only", "", "run only the parts with these names (comma-separated)")
	flag.Parse()

	b, cleanup, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshbench:", err)
		os.Exit(1)
	}
	defer cleanup()
	slices.SortStableFunc(parts, func(a, b part) int { return a.order - b.order })
	var wanted []string
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			wanted = append(wanted, name)
		}
	}
	failed := 0
	for _, p := range parts {
		if len(wanted) > 0 && !slices.Contains(wanted, p.name) {
			continue
		}
		if err := p.run(b, *runs); err != nil {
			fmt.Printf("\n%s: could not run: %v\n", p.name, err)
			failed++
		}
	}
	if failed == len(parts) {
		os.Exit(1)
	}
}

// build compiles the programs the parts need, static, as they ship: with
// the tags and linker flags of "make build" (the Makefile's TAGS leave out
// urfave/cli's man-page generator, whose init every meshinit start would
// pay), so the join time measured is that of the binary users run.
func build() (binaries, func(), error) {
	dir, err := os.MkdirTemp("", "meshbench-bin-")
	if err != nil {
		return binaries{}, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-ldflags", "-s -w",
		"-o", dir+"/", "./cmd/meshinit", "./cmd/meshcoord", "./cmd/meshdemo")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return binaries{}, nil, fmt.Errorf("building: %v\n%s", err, out)
	}
	return binaries{
		meshinit:  filepath.Join(dir, "meshinit"),
		meshcoord: filepath.Join(dir, "meshcoord"),
		meshdemo:  filepath.Join(dir, "meshdemo"),
	}, cleanup, nil
}
