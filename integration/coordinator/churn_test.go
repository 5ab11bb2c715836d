package coordinator_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/coordtest"
	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// TestCrashChurn: 500 nodes join (register, open the map stream) and most
// of them leave again (logout), from 8 clients at once, while the real
// meshcoord is killed with SIGKILL at random moments and restarted on the
// same file. Clients retry what failed as meshinit does: a registration with
// the same node secret, a stream, a logout. A follower runs
// "meshcoord events --follow --json" throughout, and after each crash
// resumes it with --since the last event it printed. Afterwards:
//
//   - every node whose registration was answered 200 is still listed, or
//     was deleted with a reason;
//   - every listed node is online (the ones that never left hold their
//     streams): nothing half-made is left behind;
//   - each answered registration made one node (one registered event);
//   - no event number was used twice, and the follower saw exactly the
//     stored history: nothing missed, nothing repeated, nothing that the
//     store does not have.
func TestCrashChurn(t *testing.T) {
	harness.Integration(t)
	const joins, clients, grace = 500, 8, 3 * time.Second
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := mrand.New(mrand.NewPCG(uint64(seed), 0))
	c := coordtest.Start(t, coordtest.Options{ReconnectGrace: grace, EphemeralTimeout: 10 * time.Minute})
	key := c.CreateKey(t, "--ephemeral", "--reusable")

	ctx, stop := context.WithTimeout(context.Background(), 4*time.Minute)
	defer stop()
	follower := followEvents(ctx, c)

	ch := &churn{url: c.URL, key: key, ctx: ctx, nodes: map[meshapi.NodeID]*churnNode{}}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(seed), uint64(w+1)))
			for i := int(next.Add(1)); i <= joins && ctx.Err() == nil; i = int(next.Add(1)) {
				ch.joinAndMaybeLeave(r, i%10 != 0) // one in ten stays
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	// The crashes, from the test's goroutine: a random pause, SIGKILL, a
	// restart on the same file and address.
	kills := 0
churning:
	for {
		select {
		case <-done:
			break churning
		case <-ctx.Done():
			t.Fatalf("the churn did not finish in time (%d kills so far, %d joins answered)", kills, ch.answered())
		case <-time.After(time.Duration(100+rng.IntN(700)) * time.Millisecond):
		}
		c.Kill(t)
		kills++
		c.Restart(t)
	}
	for _, err := range ch.errs() {
		t.Error(err)
	}
	t.Logf("%d joins answered, %d kills", ch.answered(), kills)
	if kills < 5 {
		t.Errorf("only %d kills during the churn: too few to test anything", kills)
	}

	// The stayers reconnect within their backoff; then everything settles.
	stayers := ch.stayers()
	harness.Eventually(t, 30*time.Second, "every node that stayed is online", func() (bool, string) {
		online := map[meshapi.NodeID]bool{}
		for _, n := range c.Nodes(t) {
			online[n.ID] = n.Online
		}
		for _, id := range stayers {
			if !online[id] {
				return false, fmt.Sprintf("node %d is not online", id)
			}
		}
		return true, ""
	})
	nodes := c.Nodes(t)
	history := c.Events(t)
	ch.stopStreams()

	// Every event number once, in order, from 1; the follower saw exactly
	// these events.
	for i, e := range history {
		if e.Seq != uint64(i+1) {
			t.Fatalf("stored event %d has seq %d: numbers are not 1, 2, 3, …", i, e.Seq)
		}
	}
	seen := follower.events(t, uint64(len(history)))
	if len(seen) != len(history) {
		t.Errorf("the follower printed %d events, the store has %d", len(seen), len(history))
	}
	for i := range min(len(seen), len(history)) {
		if s, h := seen[i], history[i]; s.Seq != h.Seq || s.Type != h.Type || s.NodeID != h.NodeID || !s.Time.Equal(h.Time) {
			t.Fatalf("the follower's event %d is %+v, the store's is %+v: a number was used twice, or an event missed", i, s, h)
		}
	}

	// Every answered registration made one node, which is listed (and
	// online) or was deleted with a reason.
	listed := map[meshapi.NodeID]meshapi.Node{}
	for _, n := range nodes {
		listed[n.ID] = n
		if !n.Online {
			t.Errorf("node %d (%s) is listed and offline: left behind", n.ID, n.Name)
		}
	}
	registered := map[meshapi.NodeID]int{}
	deleted := map[meshapi.NodeID]meshapi.DeleteReason{}
	for _, e := range history {
		switch e.Type {
		case meshapi.EventRegistered:
			registered[e.NodeID]++
		case meshapi.EventDeleted:
			deleted[e.NodeID] = e.Reason
		}
	}
	for id := range ch.nodes {
		_, isListed := listed[id]
		if reason, ok := deleted[id]; !isListed && (!ok || reason == "") {
			t.Errorf("node %d was answered 200, and is neither listed nor deleted with a reason", id)
		}
		if registered[id] != 1 {
			t.Errorf("node %d has %d registered events", id, registered[id])
		}
	}
	if len(registered) != len(ch.nodes) {
		t.Errorf("%d nodes were registered, %d registrations answered: retries made extra nodes", len(registered), len(ch.nodes))
	}
}

// churn is the clients' shared record.
type churn struct {
	url, key string
	ctx      context.Context
	mu       sync.Mutex
	nodes    map[meshapi.NodeID]*churnNode // answered 200
	stay     []*churnNode
	problems []error
}

type churnNode struct {
	id     meshapi.NodeID
	secret string
	stop   context.CancelFunc // ends a stayer's stream
	done   chan struct{}
}

var churnHTTP = &http.Client{Timeout: 10 * time.Second}

func (ch *churn) fail(err error) {
	ch.mu.Lock()
	ch.problems = append(ch.problems, err)
	ch.mu.Unlock()
}

func (ch *churn) errs() []error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.problems
}

func (ch *churn) answered() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.nodes)
}

func (ch *churn) stayers() []meshapi.NodeID {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var ids []meshapi.NodeID
	for _, n := range ch.stay {
		ids = append(ids, n.id)
	}
	return ids
}

func (ch *churn) stopStreams() {
	ch.mu.Lock()
	stay := ch.stay
	ch.mu.Unlock()
	for _, n := range stay {
		n.stop()
		<-n.done
	}
}

// retry calls f until it reports done, pausing briefly between attempts
// (the coordinator may be down), until the test's deadline.
func (ch *churn) retry(r *mrand.Rand, what string, f func() (done bool, err error)) bool {
	for {
		done, err := f()
		if done {
			if err != nil {
				ch.fail(fmt.Errorf("%s: %w", what, err))
			}
			return err == nil
		}
		select {
		case <-ch.ctx.Done():
			ch.fail(fmt.Errorf("%s: still failing at the deadline: %v", what, err))
			return false
		case <-time.After(time.Duration(20+r.IntN(80)) * time.Millisecond):
		}
	}
}

func (ch *churn) joinAndMaybeLeave(r *mrand.Rand, leave bool) {
	var pub meshapi.Key
	rand.Read(pub[:])
	req := meshapi.RegisterRequest{AuthKey: ch.key, Hostname: "churn", PublicKey: pub, Secret: meshapi.NewNodeSecret()}
	var reg meshapi.RegisterResponse
	if !ch.retry(r, "register", func() (bool, error) { return ch.post(meshapi.PathRegister, "", req, &reg) }) {
		return
	}
	n := &churnNode{id: reg.Node.ID, secret: reg.Secret}
	ch.mu.Lock()
	ch.nodes[n.id] = n
	ch.mu.Unlock()
	if !leave {
		ch.hold(r, n)
		return
	}
	gone := false
	ch.retry(r, "map stream", func() (bool, error) {
		status, err := openAndRead(ch.ctx, ch.url, n.secret, time.Duration(r.IntN(200))*time.Millisecond)
		gone = status == http.StatusUnauthorized // replaced while it could not connect
		return err == nil || gone, nil
	})
	if gone {
		return
	}
	ch.retry(r, "logout", func() (bool, error) {
		done, err := ch.post(meshapi.PathLogout, n.secret, nil, nil)
		var he *httpError
		if errors.As(err, &he) && he.status == http.StatusUnauthorized {
			return true, nil // an earlier attempt logged it out; its answer was lost
		}
		return done, err
	})
}

// hold keeps n's stream open, reconnecting after every crash, until
// stopStreams.
func (ch *churn) hold(r *mrand.Rand, n *churnNode) {
	ctx, cancel := context.WithCancel(ch.ctx)
	n.stop, n.done = cancel, make(chan struct{})
	ch.mu.Lock()
	ch.stay = append(ch.stay, n)
	ch.mu.Unlock()
	seed := r.Uint64()
	go func() {
		defer close(n.done)
		r := mrand.New(mrand.NewPCG(seed, 0))
		for ctx.Err() == nil {
			status, _ := openAndRead(ctx, ch.url, n.secret, 0)
			if status == http.StatusUnauthorized {
				ch.fail(fmt.Errorf("node %d, which never left, is gone (401)", n.id))
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(20+r.IntN(80)) * time.Millisecond): // well below the grace
			}
		}
	}()
}

// post sends a JSON request; done is true when the answer is final (2xx,
// or a 4xx error, returned), false when it is worth retrying (no answer, or
// a 5xx).
func (ch *churn) post(path, secret string, body, out any) (done bool, err error) {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(ch.ctx, "POST", ch.url+path, rd)
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := churnHTTP.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode >= 500:
		return false, &httpError{status: resp.StatusCode, what: path}
	case resp.StatusCode >= 400:
		return true, &httpError{status: resp.StatusCode, what: fmt.Sprintf("%s: %s", path, data)}
	}
	if out != nil {
		return true, json.Unmarshal(data, out)
	}
	return true, nil
}

// openAndRead opens a map stream, reads its full map, and keeps reading
// for hold (until the stream ends or ctx does, when hold is 0). It returns
// the HTTP status (0 without an answer) and whether the full map arrived.
func openAndRead(ctx context.Context, url, secret string, hold time.Duration) (int, error) {
	if hold > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hold+10*time.Second)
		defer cancel()
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", url+meshapi.PathMap, nil)
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, &httpError{status: resp.StatusCode, what: "map stream"}
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), meshapi.MaxStreamLineBytes)
	if !sc.Scan() {
		return resp.StatusCode, errors.New("the map stream ended before its full map")
	}
	if hold > 0 {
		time.Sleep(hold) // how long this node stays, not synchronisation
		return resp.StatusCode, nil
	}
	for sc.Scan() {
	}
	return resp.StatusCode, nil
}

// eventFollower runs "meshcoord events --follow --json", and after each
// crash runs it again with --since the last event it printed, as an
// operator's script would.
type eventFollower struct {
	mu   sync.Mutex
	seen []meshapi.Event
	err  error
}

func followEvents(ctx context.Context, c *coordtest.Coordinator) *eventFollower {
	f := &eventFollower{}
	go func() {
		for ctx.Err() == nil {
			f.mu.Lock()
			var since uint64
			if len(f.seen) > 0 {
				since = f.seen[len(f.seen)-1].Seq
			}
			f.mu.Unlock()
			if err := f.run(ctx, c, since); err != nil {
				f.mu.Lock()
				f.err = err
				f.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond): // the server is restarting
			}
		}
	}()
	return f
}

// run follows once, until the CLI exits (the server died, or ctx ended).
func (f *eventFollower) run(ctx context.Context, c *coordtest.Coordinator, since uint64) error {
	cmd := exec.CommandContext(ctx, c.Binary, "events", "--follow", "--json", "--since", strconv.FormatUint(since, 10))
	cmd.Env = append(os.Environ(), "MESHCOORD_ADMIN_SOCKET="+c.AdminSocket, "MESHCOORD_SERVER=")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var e meshapi.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return fmt.Errorf("events --json printed %q: %v", sc.Bytes(), err)
		}
		f.mu.Lock()
		f.seen = append(f.seen, e)
		f.mu.Unlock()
	}
	cmd.Wait() // exits non-zero when the server dies under it: run again
	return nil
}

// events waits until the follower has printed up to seq (or 30 s passed)
// and returns what it printed.
func (f *eventFollower) events(t *testing.T, seq uint64) []meshapi.Event {
	t.Helper()
	harness.Eventually(t, 30*time.Second, "the follower catches up", func() (bool, string) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err != nil {
			t.Fatalf("event follower: %v", f.err)
		}
		n := len(f.seen)
		return n > 0 && f.seen[n-1].Seq >= seq, fmt.Sprintf("%d events printed", n)
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]meshapi.Event(nil), f.seen...)
}
