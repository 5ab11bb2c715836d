package main

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/internal/cpuload"
	"github.com/meshinit/meshinit/meshapi"
)

// changeKey names one change: what happened to which node.
type changeKey struct {
	kind byte // 'u' upsert (registered), 'p' presence (connected), 'r' remove (logged out)
	id   meshapi.NodeID
}

// bench holds one size's run.
type bench struct {
	srvs []*server // the replicas (one, unless PostgreSQL with -replicas)
	key  string
	pol  *benchPolicy // nil: no policy
	cur  atomic.Pointer[window]
	// regs counts registrations (the observer is 0), for keyFor.
	regs atomic.Int64

	mu       sync.Mutex
	sims     []*sim // connected
	leavable []*sim
	started  map[changeKey]time.Time // when the client started each change
	tagOf    map[meshapi.NodeID]int  // each node's tag index (with a policy)
	byVer    map[uint64]changeKey    // what each version was (from the observer)
	obsLast  atomic.Uint64
	hostSeq  atomic.Int64
	ops      map[string][]time.Duration // how long each kind of churn call took
}

func (b *bench) noteOp(kind string, d time.Duration) {
	b.mu.Lock()
	b.ops[kind] = append(b.ops[kind], d)
	b.mu.Unlock()
}

func (b *bench) observe(m meshapi.MapMessage) {
	var k changeKey
	switch m.Type {
	case meshapi.MsgUpsert:
		k = changeKey{'u', m.Peers[0].ID}
	case meshapi.MsgRemove:
		k = changeKey{'r', m.Removed[0]}
	case meshapi.MsgPresence:
		if !m.Presence[0].Online {
			return
		}
		k = changeKey{'p', m.Presence[0].ID}
	default:
		return
	}
	b.mu.Lock()
	b.byVer[m.Version] = k
	b.mu.Unlock()
	b.obsLast.Store(m.Version)
}

func (b *bench) noteStart(k changeKey, t time.Time) {
	b.mu.Lock()
	b.started[k] = t
	b.mu.Unlock()
}

func (b *bench) hostname() string { return fmt.Sprintf("sim-%06d", b.hostSeq.Add(1)) }

// runSize measures n nodes, with a policy of that many tags unless tags is
// 0 (policy.go), on `replicas` servers started with serveArgs (one
// database: several only on PostgreSQL). Node i registers, streams and
// logs out on replica i mod replicas.
func runSize(bin string, n int, churnFor time.Duration, rate, runs, tags, replicas int, serveArgs ...string) (result, error) {
	res := result{nodes: n, tags: tags, replicas: replicas}
	b := &bench{started: map[changeKey]time.Time{}, tagOf: map[meshapi.NodeID]int{},
		byVer: map[uint64]changeKey{}, ops: map[string][]time.Duration{}}
	for range replicas {
		srv, err := startServer(bin, serveArgs...)
		if err != nil {
			return res, err
		}
		defer srv.stop()
		b.srvs = append(b.srvs, srv)
	}
	var err error
	if b.key, err = b.srvs[0].createKey(); err != nil {
		return res, err
	}
	if tags > 0 {
		if b.pol, err = setUpPolicy(b.srvs[0], tags); err != nil {
			return res, err
		}
	}
	defer func() {
		for _, s := range b.sims {
			s.close()
		}
	}()

	// 1. Registrations, 16 at a time.
	regs := make([]*sim, n)
	start := time.Now()
	b.regs.Store(int64(n - 1))
	if err := parallel(n, 16, func(i int) error {
		s, err := b.register(i, b.hostname())
		regs[i] = s
		return err
	}); err != nil {
		return res, err
	}
	res.regRate = float64(n) / time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "   registered %d in %v (%.0f/s)\n", n, time.Since(start).Round(time.Millisecond), res.regRate)

	// 2. Every stream, 32 opening at a time; half the nodes are stable (never
	// leave), the observer among them.
	start = time.Now()
	regs[0].stable = true
	if err := regs[0].connect(regs[0].home, &b.cur, b.observe); err != nil {
		return res, err
	}
	<-regs[0].ready
	if err := parallel(n-1, 32, func(i int) error {
		s := regs[i+1]
		s.stable = i%2 == 0
		if err := s.connect(s.home, &b.cur, nil); err != nil {
			return err
		}
		<-s.ready
		return nil
	}); err != nil {
		return res, err
	}
	b.sims = regs
	for _, s := range regs {
		if !s.stable {
			b.leavable = append(b.leavable, s)
		}
	}
	fmt.Fprintf(os.Stderr, "   streams open after %v; waiting for every stream to catch up\n", time.Since(start).Round(time.Millisecond))
	if _, err := b.settle(120 * time.Second); err != nil {
		return res, err
	}
	res.setup = time.Since(start)
	fmt.Fprintf(os.Stderr, "   connected %d streams in %v\n", n, res.setup.Round(time.Millisecond))

	// 3. Churn windows.
	var wins []result
	for w := range runs {
		r, err := b.churn(churnFor, rate)
		if err != nil {
			return res, err
		}
		fmt.Fprintf(os.Stderr, "   window %d: %d changes, p50 %s p99 %s, all-peers p99 %s, missing %d, coord CPU %.2f, other processes %.2f\n",
			w+1, r.changes, ms(r.p50), ms(r.p99), ms(r.allP99), r.missing, r.cpuCores, r.otherCores)
		wins = append(wins, r)
	}
	med := medianBy(wins, func(r result) float64 { return float64(r.allP99) })
	med.nodes, med.tags, med.replicas, med.regRate, med.setup = n, tags, replicas, res.regRate, res.setup
	for _, srv := range b.srvs { // the largest replica
		now, peak := rss(srv.cmd.Process.Pid)
		med.rssMiB, med.peakRSSMiB = max(med.rssMiB, now), max(med.peakRSSMiB, peak)
	}
	med.windowsUsed = len(wins)
	return med, nil
}

// settle registers a marker node (a change every connected node sees) and
// waits until every stream has read it: the system has caught up.
func (b *bench) settle(timeout time.Duration) (uint64, error) {
	key, _ := b.markerKey()
	m, err := register(b.srvs[0].url, key, "marker-"+b.hostname())
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(timeout)
	var target uint64
	for target == 0 {
		b.mu.Lock()
		for v, k := range b.byVer {
			if k == (changeKey{'u', m.id}) {
				target = v
			}
		}
		b.mu.Unlock()
		if time.Now().After(deadline) {
			return 0, errors.New("the observer never saw the marker")
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
	for {
		b.mu.Lock()
		behind := 0
		for _, s := range b.sims {
			if s.last.Load() < target {
				behind++
			}
		}
		b.mu.Unlock()
		if behind == 0 {
			return target, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%d streams did not catch up within %v", behind, timeout)
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
}

// churn runs rate joins and rate leaves per second for d, then measures.
func (b *bench) churn(d time.Duration, rate int) (result, error) {
	var res result
	count := int(d.Seconds() * float64(rate))
	w := &window{v0: b.obsLast.Load(), size: 3*count + 64, base: time.Now()}
	b.cur.Store(w)
	cpu0, db0, wall0, busy0, self0 := b.coordCPU(), dbCPU(), time.Now(), cpuload.MachineBusy(), cpuload.Self(false)

	var wg sync.WaitGroup
	var errs atomic.Int64
	var firstErr atomic.Pointer[error]
	fail := func(err error) {
		errs.Add(1)
		firstErr.CompareAndSwap(nil, &err)
	}
	interval := time.Second / time.Duration(rate)
	tick := time.NewTicker(interval)
	for i := 0; i < count; i++ {
		<-tick.C
		wg.Add(2)
		go func() { // join: register, then hold the stream
			defer wg.Done()
			t0 := time.Now()
			s, err := b.register(int(b.regs.Add(1)), b.hostname())
			if err != nil {
				fail(err)
				return
			}
			b.noteStart(changeKey{'u', s.id}, t0)
			t1 := time.Now()
			b.noteOp("register", t1.Sub(t0))
			b.noteStart(changeKey{'p', s.id}, t1)
			if err := s.connect(s.home, &b.cur, nil); err != nil {
				fail(err)
				return
			}
			<-s.ready
			b.noteOp("connect+full map", time.Since(t1))
			b.mu.Lock()
			b.sims = append(b.sims, s)
			b.leavable = append(b.leavable, s)
			b.mu.Unlock()
		}()
		go func() { // leave: a random non-stable node logs out
			defer wg.Done()
			b.mu.Lock()
			if len(b.leavable) == 0 {
				b.mu.Unlock()
				return
			}
			j := rand.IntN(len(b.leavable))
			s := b.leavable[j]
			b.leavable[j] = b.leavable[len(b.leavable)-1]
			b.leavable = b.leavable[:len(b.leavable)-1]
			b.mu.Unlock()
			t0 := time.Now()
			b.noteStart(changeKey{'r', s.id}, t0)
			if err := s.logout(s.home); err != nil {
				fail(err)
			}
			b.noteOp("logout", time.Since(t0))
			s.close()
			b.mu.Lock()
			for k, x := range b.sims {
				if x == s {
					b.sims[k] = b.sims[len(b.sims)-1]
					b.sims = b.sims[:len(b.sims)-1]
					break
				}
			}
			b.mu.Unlock()
		}()
	}
	tick.Stop()
	wg.Wait()
	// A few failures on an overloaded box (an answer lost, then the retry
	// refused) leave the window measurable: they are counted. More than 1 %
	// means something is wrong with the run.
	if n := errs.Load(); n > int64(2*count)/100 {
		return res, fmt.Errorf("%d of %d churn operations failed, the first: %v", n, 2*count, *firstErr.Load())
	} else if n > 0 {
		res.failed = n
		fmt.Fprintf(os.Stderr, "   %d of %d churn operations failed, the first: %v\n", n, 2*count, *firstErr.Load())
	}
	last, err := b.settle(60 * time.Second)
	if err != nil {
		return res, err
	}
	coordAll := (b.coordCPU() - cpu0).Seconds() / time.Since(wall0).Seconds()
	res.cpuCores = coordAll / float64(len(b.srvs))
	res.benchCores = (cpuload.Self(false) - self0).Seconds() / time.Since(wall0).Seconds()
	// Clock-tick accounting makes this jitter around zero on a quiet box.
	res.dbCores = (dbCPU() - db0).Seconds() / time.Since(wall0).Seconds()
	res.otherCores = max(0, (cpuload.MachineBusy()-busy0).Seconds()/time.Since(wall0).Seconds()-coordAll-res.benchCores-res.dbCores)
	b.cur.Store(nil)

	// Measure every change of the window that a client started.
	b.mu.Lock()
	defer b.mu.Unlock()
	type rec struct {
		got    []uint32
		stable bool
		tag    int
	}
	var recs []rec
	for _, s := range b.sims {
		if g := s.take(w); g != nil || s.stable {
			recs = append(recs, rec{g, s.stable, s.tag})
		}
	}
	for kind, ds := range b.ops {
		fmt.Fprintf(os.Stderr, "   %s calls: p50 %s p99 %s\n", kind, ms(pct(ds, 50)), ms(pct(ds, 99)))
	}
	b.ops = map[string][]time.Duration{}
	perKind := map[byte][]time.Duration{}
	var per, all []time.Duration
	for v := w.v0 + 1; v < last && v <= w.v0+uint64(w.size); v++ {
		k, ok := b.byVer[v]
		if !ok {
			continue
		}
		t0, ok := b.started[k]
		if !ok {
			continue // not a churn change (the marker)
		}
		res.changes++
		about := b.tagOf[k.id]
		var worst time.Duration
		for _, r := range recs {
			var at uint32
			if r.got != nil {
				at = r.got[v-w.v0-1]
			}
			if at == 0 {
				if r.stable && b.pol.sees(r.tag, about) {
					res.missing++
				}
				continue
			}
			lat := w.base.Add(time.Duration(at-1) * time.Microsecond).Sub(t0)
			per = append(per, lat)
			perKind[k.kind] = append(perKind[k.kind], lat)
			if r.stable && lat > worst {
				worst = lat
			}
		}
		all = append(all, worst)
	}
	for kind, ds := range perKind {
		fmt.Fprintf(os.Stderr, "   deltas of kind %c: p50 %s p99 %s\n", kind, ms(pct(ds, 50)), ms(pct(ds, 99)))
	}
	res.deliveries = int64(len(per))
	if res.changes > 0 {
		res.fanout = float64(res.deliveries) / float64(res.changes)
	}
	res.p50, res.p99 = pct(per, 50), pct(per, 99)
	res.allP50, res.allP99, res.allMax = pct(all, 50), pct(all, 99), pct(all, 100)
	return res, nil
}

// coordCPU is the CPU time every replica used so far.
func (b *bench) coordCPU() time.Duration {
	var t time.Duration
	for _, srv := range b.srvs {
		t += cpuTime(srv.cmd.Process.Pid)
	}
	return t
}

// register registers the nth node of the run (keyFor picks its key and
// tag) on its replica and notes its tag.
func (b *bench) register(n int, hostname string) (*sim, error) {
	key, tag := b.keyFor(n)
	home := b.srvs[n%len(b.srvs)].url
	s, err := register(home, key, hostname)
	if err != nil {
		return nil, err
	}
	s.tag, s.home = tag, home
	b.mu.Lock()
	b.tagOf[s.id] = tag
	b.mu.Unlock()
	return s, nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := (len(d) - 1) * p / 100
	return d[i]
}

func medianBy(rs []result, key func(result) float64) result {
	sort.Slice(rs, func(i, j int) bool { return key(rs[i]) < key(rs[j]) })
	return rs[len(rs)/2]
}

// parallel runs f(0..n-1) on `workers` goroutines; the first error stops it.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
