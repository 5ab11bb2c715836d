package coordinator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/meshinit/meshinit/coordinator/clock"
	"github.com/meshinit/meshinit/meshapi"
)

// BenchmarkJoinLeave is one node's life while 100 peers follow their map
// streams: register (stored), open the map stream and read the full map,
// log out (stored). Each join and leave is encoded once and fanned out to
// every peer. It measures the coordinator's own path (state, rules, map
// log, store writer) over real HTTP and SQLite; compare allocs/op, which
// the machine's load does not change, and ns/op in the same run.
func BenchmarkJoinLeave(b *testing.B) {
	e := newEnv(b, Config{})
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := func(secret string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.api.URL+meshapi.PathMap, nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("map stream: %v %v", resp, err)
		}
		return resp
	}
	for range 100 {
		resp := follow(e.register(k.Key, "peer").reg.Secret)
		go func() { io.Copy(io.Discard, resp.Body); resp.Body.Close() }()
	}
	buf := make([]byte, 64<<10)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c := e.register(k.Key, "node")
		resp := follow(c.reg.Secret)
		if _, err := resp.Body.Read(buf); err != nil {
			b.Fatal(err)
		}
		if status, _, _ := c.logout(nil); status != http.StatusOK {
			b.Fatalf("logout: %d", status)
		}
		resp.Body.Close()
	}
}

// BenchmarkRegister is registrations from 16 clients at once, each answered
// once stored (group commit): the registration rate.
func BenchmarkRegister(b *testing.B) {
	e := newEnv(b, Config{Clock: clock.Real}) // real GC timers, as in production
	k := e.createKey(meshapi.KeyCreateRequest{Reusable: true, Ephemeral: true})
	b.ReportAllocs()
	b.SetParallelism(8) // 16 clients on this 2-core box
	var seq atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if c, status, er := e.tryRegister(k.Key, fmt.Sprintf("node-%d", seq.Add(1))); c == nil {
				b.Errorf("register: %d %+v", status, er)
				return
			}
		}
	})
}
