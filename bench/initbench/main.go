// Command initbench compares the plain-init overhead of meshinit with tini:
// the wall time and peak RSS of `meshinit -- /bin/true` against
// `tini -s -- /bin/true` (tini as a subreaper, as meshinit is when not
// PID 1), in interleaved runs of one process, so both see the same machine.
//
//	go run ./bench/initbench [-n 300] [-meshinit bin/meshinit] [-vs other/meshinit]...
//
// It prints medians, ratios against tini measured in the same run, and the
// package-initialisation cost of the meshinit binary (GODEBUG=inittrace=1),
// which is what the no-key path pays for code linked in but not used. It
// never fails on speed. -vs adds other meshinit builds to the same
// interleaved run, for before/after comparisons of a change.
//
// Besides wall time it prints, per run, the CPU time, minor page faults and
// context switches of the init and its command together (getrusage of the
// reaped process; /bin/true's share is the "true (no init)" row). Under load
// wall time follows CPU time; faults and switches say where it goes.
//
// Peak RSS is the init's own VmHWM, read from /proc by its child just before
// the child exits (separate runs with `sh -c 'grep VmHWM /proc/$PPID/status'`
// as the command), with the two parts of the resident set at that moment:
// RssFile (pages of the binary mapped in: text and read-only data touched,
// plus the kernel's fault-around) and RssAnon (heap, stacks, runtime data). getrusage's ru_maxrss cannot be used: a process started
// with vfork, as Go starts every child, inherits the launching process's
// high-water mark at exec, so every init would read as large as this
// program.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Targets from issue 2; printed, never enforced.
const (
	targetWallRatio = 1.5
	targetExtraRSS  = 5 << 20
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "initbench:", err)
		os.Exit(1)
	}
}

// run is main with errors returned, so that the deferred removals of the
// staged copies and of a fresh build happen on every path.
func run() error {
	runs := flag.Int("n", 300, "measured runs of each init (interleaved)")
	warmup := flag.Int("warmup", 20, "unmeasured runs of each first")
	rssRuns := flag.Int("rss-runs", 30, "runs of each init measuring its peak RSS")
	meshinitPath := flag.String("meshinit", "", "meshinit binary (default: bin/meshinit if present, else built now)")
	var others []string
	flag.Func("vs", "another meshinit binary to measure in the same run (repeatable)", func(p string) error {
		others = append(others, p)
		return nil
	})
	flag.Parse()
	if *runs < 1 {
		return fmt.Errorf("-n %d: at least one measured run is needed", *runs)
	}

	bin, cleanup, err := meshinitBinary(*meshinitPath)
	if err != nil {
		return err
	}
	defer cleanup()
	trueBin, err := exec.LookPath("true")
	if err != nil {
		return errors.New("no true(1) on PATH")
	}

	stageDir, err := os.MkdirTemp("", "initbench-stage-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stageDir)
	var subjects []*subject
	for i, b := range append([]string{bin}, others...) {
		name := "meshinit"
		if i > 0 {
			name = fmt.Sprintf("vs%d %s", i, filepath.Base(b))
		}
		installed, fromDisk, err := stage(stageDir, b, fmt.Sprint(i))
		if err != nil {
			return fmt.Errorf("staging copies of %s: %w", b, err)
		}
		subjects = append(subjects,
			&subject{name: name + " (installed)", init: []string{installed, "--"}},
			&subject{name: name + " (from disk)", init: []string{fromDisk, "--"}})
	}
	if tini, err := exec.LookPath("tini"); err == nil {
		subjects = append([]*subject{{name: "tini", init: []string{tini, "-s", "--"}}}, subjects...)
	} else {
		fmt.Println("tini not found (scripts/runtimes.sh installs it): no baseline, absolute numbers only")
	}
	// A plain `true` shows what fork+exec alone costs on this machine.
	subjects = append([]*subject{{name: "true (no init)"}}, subjects...)

	fmt.Printf("initbench: %d interleaved runs each after %d warm-up, %s, %d CPUs, %s\n",
		*runs, *warmup, runtime.Version(), runtime.NumCPU(), bin)
	fmt.Println("each meshinit runs from two copies: as written (installed, e.g. from an image layer) and read back from disk (pagecache.go)")
	for i := 0; i < *warmup+*runs; i++ {
		// Rotate the order so no subject always runs right after another.
		for j := range subjects {
			s := subjects[(i+j)%len(subjects)]
			if err := s.measureWall(trueBin, i >= *warmup); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	for i := 0; i < *rssRuns; i++ {
		for _, s := range subjects[1:] {
			if err := s.measureRSS(); err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	report(subjects)
	initCost(bin, trueBin)
	return nil
}

// subject is one init measured repeatedly (no init: the command alone).
type subject struct {
	name   string
	init   []string // the init and its arguments up to the command
	walls  []time.Duration
	cpu    []time.Duration // user+system time of the init and its command
	faults []int64         // minor page faults of both
	csw    []int64         // context switches of both
	rss    []int64         // the init's own peak RSS (VmHWM), bytes
	anon   []int64         // its RssAnon when the command runs, bytes
	file   []int64         // its RssFile when the command runs, bytes
}

// measureWall times `init... true`, start to reaped.
func (s *subject) measureWall(trueBin string, record bool) error {
	argv := append(slices.Clone(s.init), trueBin)
	cmd := exec.Command(argv[0], argv[1:]...)
	begin := time.Now()
	if err := cmd.Run(); err != nil {
		return err
	}
	if record {
		s.walls = append(s.walls, time.Since(begin))
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			s.cpu = append(s.cpu, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()))
			s.faults = append(s.faults, ru.Minflt)
			s.csw = append(s.csw, ru.Nvcsw+ru.Nivcsw)
		}
	}
	return nil
}

// measureRSS runs the init with a command that reports the init's VmHWM,
// RssAnon and RssFile.
func (s *subject) measureRSS() error {
	argv := append(slices.Clone(s.init), "/bin/sh", "-c", "grep -E '^(VmHWM|RssAnon|RssFile):' /proc/$PPID/status")
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return err
	}
	got := map[string]int64{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line) // VmHWM: 4532 kB
		if len(f) != 3 {
			return fmt.Errorf("unexpected line %q in the init's status", line)
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return err
		}
		got[f[0]] = kb << 10
	}
	if len(got) != 3 {
		return fmt.Errorf("want VmHWM, RssAnon and RssFile, got %q", out)
	}
	s.rss = append(s.rss, got["VmHWM:"])
	s.anon = append(s.anon, got["RssAnon:"])
	s.file = append(s.file, got["RssFile:"])
	return nil
}

func median[T int64 | time.Duration | float64](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func percentile[T int64 | time.Duration](xs []T, p float64) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func report(subjects []*subject) {
	fmt.Println()
	fmt.Printf("%-34s %9s %9s %9s %7s %6s %13s %10s %10s\n",
		"command", "wall p50", "wall p90", "cpu p50", "faults", "ctxsw", "peak RSS p50", "RssAnon", "RssFile")
	for _, s := range subjects {
		rss, anon, file := "-", "-", "-"
		if len(s.rss) > 0 {
			rss, anon, file = mib(median(s.rss)), mib(median(s.anon)), mib(median(s.file))
		}
		fmt.Printf("%-34s %9s %9s %9s %7d %6d %13s %10s %10s\n", s.name,
			ms(median(s.walls)), ms(percentile(s.walls, 0.9)), ms(median(s.cpu)),
			median(s.faults), median(s.csw), rss, anon, file)
	}
	var tini *subject
	for _, s := range subjects {
		if s.name == "tini" {
			tini = s
		}
	}
	if tini == nil {
		return
	}
	fmt.Println()
	for _, s := range subjects {
		if s == tini || len(s.rss) == 0 {
			continue
		}
		ratio := float64(median(s.walls)) / float64(median(tini.walls))
		extra := median(s.rss) - median(tini.rss)
		fmt.Printf("%-34s wall %.2fx tini (target <= %.1fx: %s), peak RSS %+.1f MiB (target <= +%d MiB: %s)\n",
			s.name, ratio, targetWallRatio, verdict(ratio <= targetWallRatio),
			float64(extra)/(1<<20), targetExtraRSS>>20, verdict(extra <= targetExtraRSS))
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// initCost runs meshinit with GODEBUG=inittrace=1 a few times and sums the
// package initialisers (median per package over the runs: one run is at the
// mercy of the scheduler), listing the most expensive: code that is linked in
// costs start-up time even when the no-key path never calls it.
func initCost(bin, trueBin string) {
	const runs = 15
	type pkg struct {
		name        string
		clock       []float64 // ms, one per run
		bytes, objs int64
	}
	byName := map[string]*pkg{}
	var order []*pkg
	for range runs {
		cmd := exec.Command(bin, "--", trueBin)
		cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			fmt.Println("inittrace run failed:", err)
			return
		}
		sc := bufio.NewScanner(&stderr)
		for sc.Scan() {
			// init <pkg> @<t> ms, <clock> ms clock, <bytes> bytes, <allocs> allocs
			f := strings.Fields(sc.Text())
			if len(f) < 11 || f[0] != "init" {
				continue
			}
			p := byName[f[1]]
			if p == nil {
				p = &pkg{name: f[1]}
				byName[f[1]] = p
				order = append(order, p)
			}
			clock, _ := strconv.ParseFloat(f[4], 64)
			p.clock = append(p.clock, clock)
			p.bytes, _ = strconv.ParseInt(f[7], 10, 64)
			p.objs, _ = strconv.ParseInt(f[9], 10, 64)
		}
	}
	med := median[float64]
	var clock float64
	var bytes, objs int64
	for _, p := range order {
		clock += med(p.clock)
		bytes += p.bytes
		objs += p.objs
	}
	sort.SliceStable(order, func(i, j int) bool { return med(order[i].clock) > med(order[j].clock) })
	fmt.Printf("\npackage init on the no-key path (median of %d runs): %d packages, %.2f ms, %d KiB in %d allocations; slowest:\n",
		runs, len(order), clock, bytes>>10, objs)
	for _, p := range order[:min(10, len(order))] {
		fmt.Printf("  %-50s %7.3f ms %8d B %6d allocs\n", p.name, med(p.clock), p.bytes, p.objs)
	}
	if fi, err := os.Stat(bin); err == nil {
		fmt.Printf("binary size: %.1f MiB\n", float64(fi.Size())/(1<<20))
	}
}

// meshinitBinary returns the binary to measure: the flag, bin/meshinit
// (what `make bench` has just built), or a fresh static build.
func meshinitBinary(flagPath string) (string, func(), error) {
	noop := func() {}
	if flagPath != "" {
		return flagPath, noop, nil
	}
	if fi, err := os.Stat(filepath.Join("bin", "meshinit")); err == nil && !fi.IsDir() {
		p, err := filepath.Abs(filepath.Join("bin", "meshinit"))
		return p, noop, err
	}
	dir, err := os.MkdirTemp("", "initbench-")
	if err != nil {
		return "", noop, err
	}
	out := filepath.Join(dir, "meshinit")
	// The same tags and flags as `make build`.
	build := exec.Command("go", "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-ldflags", "-s -w", "-o", out, "./cmd/meshinit")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", noop, errors.New("go build ./cmd/meshinit: " + err.Error() + "\n" + string(b))
	}
	return out, func() { os.RemoveAll(dir) }, nil
}
