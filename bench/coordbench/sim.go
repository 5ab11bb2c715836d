package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// sim is one simulated node: registered, holding its map stream, reading
// every line and noting when each delta arrived.
type sim struct {
	id     meshapi.NodeID
	secret string
	home   string // the replica it uses (its URL)
	stable bool   // stays connected for the whole run (never leaves)
	tag    int    // tag index with a policy (policy.go)

	cancel context.CancelFunc
	done   chan struct{}
	ready  chan struct{} // closed once the first line (the full map) is read
	last   atomic.Uint64 // version of the last delta or full map read

	mu  sync.Mutex
	win *window
	got []uint32 // per version offset in win: µs after win.base + 1; 0 = not received
}

// window is one measured churn period: versions after v0 are recorded.
type window struct {
	v0   uint64
	size int
	base time.Time
}

// hc carries every call. Idle connections are dropped well before the
// server's idle timeout (2 min): one it closed just as a POST went out on
// it fails with EOF, and Go does not retry a POST (at 10 000 nodes the
// streams take minutes to open while the churn clients' connections idle).
var hc = &http.Client{Transport: &http.Transport{
	MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true,
	ResponseHeaderTimeout: 60 * time.Second, IdleConnTimeout: 30 * time.Second,
}}

// transportRetries counts calls sent again because they got no answer at
// all (a connection closed under them), as a node's client would; main
// reports it.
var transportRetries atomic.Int64

// send sends the request mk makes, again (at most twice more) when it got
// no answer.
func send(mk func() *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		resp, err := hc.Do(mk())
		if err == nil || attempt == 3 {
			return resp, err
		}
		transportRetries.Add(1)
	}
}

func register(url, key, hostname string) (*sim, error) {
	var pub meshapi.Key
	rand.Read(pub[:])
	body, _ := json.Marshal(meshapi.RegisterRequest{AuthKey: key, Hostname: hostname, PublicKey: pub, Secret: meshapi.NewNodeSecret()})
	resp, err := send(func() *http.Request {
		req, _ := http.NewRequest("POST", url+meshapi.PathRegister, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return req
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("register %s: HTTP %d %s", hostname, resp.StatusCode, data)
	}
	var r meshapi.RegisterResponse
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &sim{id: r.Node.ID, secret: r.Secret}, nil
}

func (s *sim) logout(url string) error {
	resp, err := send(func() *http.Request {
		req, _ := http.NewRequest("POST", url+meshapi.PathLogout, nil)
		req.Header.Set("Authorization", "Bearer "+s.secret)
		return req
	})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("logout: HTTP %d", resp.StatusCode)
	}
	return nil
}

// connect opens the stream and returns at once; ready closes when the full
// map has been read. obs, if not nil, gets every delta decoded (the
// observer that maps versions to changes).
func (s *sim) connect(url string, cur *atomic.Pointer[window], obs func(meshapi.MapMessage)) error {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+meshapi.PathMap, nil)
	req.Header.Set("Authorization", "Bearer "+s.secret)
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		return err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		cancel()
		return fmt.Errorf("map stream: HTTP %d", resp.StatusCode)
	}
	s.cancel, s.done, s.ready = cancel, make(chan struct{}), make(chan struct{})
	go s.read(resp.Body, cur, obs)
	return nil
}

func (s *sim) close() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
}

// read consumes the stream. It parses only the line prefix
// {"type":"…","version":N (the coordinator's field order) and skips the
// rest, so 10 000 readers stay cheap; the observer decodes fully.
func (s *sim) read(body io.ReadCloser, cur *atomic.Pointer[window], obs func(meshapi.MapMessage)) {
	defer close(s.done)
	defer body.Close()
	first := true
	defer func() {
		if first { // the stream ended before its first line: do not leave connect's caller waiting
			close(s.ready)
		}
	}()
	r := bufio.NewReaderSize(body, 8<<10)
	for {
		line, err := r.ReadSlice('\n')
		long := err == bufio.ErrBufferFull
		if err != nil && !long {
			return
		}
		typ, ver := prefix(line)
		for err == bufio.ErrBufferFull { // the rest of a long line (a full map)
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return
		}
		if first {
			first = false
			close(s.ready)
		}
		switch typ {
		case "keepalive", "":
			continue
		case "full":
			s.last.Store(ver)
			continue
		}
		if w := cur.Load(); w != nil && ver > w.v0 && ver <= w.v0+uint64(w.size) {
			at := uint32(time.Since(w.base)/time.Microsecond) + 1
			s.mu.Lock()
			if s.win != w {
				s.win, s.got = w, make([]uint32, w.size)
			}
			s.got[ver-w.v0-1] = at
			s.mu.Unlock()
		}
		if obs != nil && !long {
			var m meshapi.MapMessage
			if json.Unmarshal(line, &m) == nil {
				obs(m)
			}
		}
		s.last.Store(ver)
	}
}

// take returns and forgets what s recorded in window w.
func (s *sim) take(w *window) []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.win != w {
		return nil
	}
	g := s.got
	s.win, s.got = nil, nil
	return g
}

var (
	typePrefix    = []byte(`{"type":"`)
	versionPrefix = []byte(`","version":`)
)

func prefix(line []byte) (typ string, version uint64) {
	rest, ok := bytes.CutPrefix(line, typePrefix)
	if !ok {
		return "", 0
	}
	i := bytes.Index(rest, versionPrefix)
	if i < 0 || i > 16 {
		return "", 0
	}
	typ = string(rest[:i])
	rest = rest[i+len(versionPrefix):]
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	version, _ = strconv.ParseUint(string(rest[:j]), 10, 64)
	return typ, version
}
