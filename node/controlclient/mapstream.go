package controlclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// StreamState is the health of the map stream as status shows it.
type StreamState string

const (
	StreamConnecting   StreamState = "connecting"   // first connection not yet up
	StreamConnected    StreamState = "connected"    // a stream is open and alive
	StreamReconnecting StreamState = "reconnecting" // the last stream broke; retrying with backoff
	StreamStopped      StreamState = "stopped"      // Follow returned (logout, shutdown, node gone)
)

// StreamStatus is a snapshot of the map stream's health.
type StreamStatus struct {
	State      StreamState
	Since      time.Time // when State was entered
	LastError  string    // why the last stream ended, if it did
	Reconnects int       // streams opened after the first
	Version    uint64    // last map version applied
}

// FollowOptions tune Follow. The zero value uses the defaults.
type FollowOptions struct {
	// FirstLineTimeout bounds the wait for the first line of a stream,
	// before the coordinator has announced its keepalive interval.
	// Default 10s.
	FirstLineTimeout time.Duration
	// Backoff paces reconnects; default 50ms doubling to
	// MaxReconnectDelay, jittered.
	Backoff Backoff
}

// MaxReconnectDelay caps the map stream's default reconnect backoff. It
// must stay below the coordinator's reconnect grace (meshcoord
// --reconnect-grace, default 5 s, docs/coordinator.md): a node whose
// stream broke is still online for the grace, and only a holder offline
// longer than that may lose its name. With at most 2 s between attempts
// (plus the attempt itself), a healthy node is back inside the grace after
// any break, a coordinator restart included.
const MaxReconnectDelay = 2 * time.Second

// errStreamSilent is why a stream is dropped when no line came for three
// keepalive intervals: the connection is dead even if TCP has not noticed.
var errStreamSilent = errors.New("map stream silent for three keepalive intervals")

// MapHandler receives every change the stream makes to the map, in order,
// on the Follow goroutine. m is the map after the change; it must not be
// kept or changed after the handler returns.
type MapHandler func(c Change, m *NetMap)

// Follow opens the map stream and keeps it open: it applies every message
// to m and hands each non-empty change to h. When a stream breaks (error,
// end, or silence for three keepalive intervals) it reconnects with
// jittered exponential backoff, asking for since=<last version> so that it
// gets only the deltas it missed. It returns when ctx ends (ctx.Err()) or
// when the coordinator says the node is gone (IsLoggedOut is true for the
// error): retrying cannot help then.
func (c *Client) Follow(ctx context.Context, m *NetMap, h MapHandler, opts FollowOptions) error {
	bo := opts.Backoff
	if bo.Max <= 0 {
		bo.Max = MaxReconnectDelay
	}
	first := opts.FirstLineTimeout
	if first <= 0 {
		first = 10 * time.Second
	}
	for n := 0; ; n++ {
		if n > 0 {
			c.status.set(func(s *StreamStatus) { s.Reconnects++ })
		}
		progressed, err := c.streamOnce(ctx, m, h, first)
		if ctx.Err() != nil {
			c.status.stop("")
			return ctx.Err()
		}
		if IsLoggedOut(err) {
			c.status.stop(err.Error())
			c.log.Warn("map stream refused: node is no longer in the mesh", "err", err)
			return err
		}
		if progressed {
			bo.Reset()
		}
		d := bo.Next()
		c.status.set(func(s *StreamStatus) {
			s.State, s.Since, s.LastError = StreamReconnecting, time.Now(), errString(err)
		})
		c.log.Warn("map stream lost, reconnecting", "err", err, "retry_in", d.Round(time.Millisecond), "since", m.Version)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			c.status.stop("")
			return ctx.Err()
		case <-t.C:
		}
	}
}

// MapStatus returns the map stream's health.
func (c *Client) MapStatus() StreamStatus { return c.status.get() }

// streamOnce runs one stream until it breaks. progressed reports whether it
// applied at least one message (so the backoff starts over).
func (c *Client) streamOnce(ctx context.Context, m *NetMap, h MapHandler, firstTimeout time.Duration) (progressed bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var q url.Values
	if m.HasMap() && !m.resync {
		// The epoch makes the resume safe across a coordinator restart: a
		// version from another run gets a full map.
		q = url.Values{meshapi.QuerySince: {strconv.FormatUint(m.Version, 10)}, meshapi.QueryEpoch: {m.Epoch}}
	}
	req, err := c.newRequest(ctx, http.MethodGet, meshapi.PathMap, q, nil, true)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", meshapi.ContentTypeStream)
	// The watchdog cancels the request when the stream goes silent; every
	// line rearms it.
	watchdog := time.AfterFunc(firstTimeout, func() { cancel(errStreamSilent) })
	defer watchdog.Stop()
	resp, err := c.hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStreamSilent) {
			return false, cause
		}
		return false, c.failed(req, noAnswer(req, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, c.failed(req, c.readError(resp))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := readLine(br, meshapi.MaxStreamLineBytes)
		if err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errStreamSilent) {
				return progressed, cause
			}
			return progressed, fmt.Errorf("reading map stream: %w", err)
		}
		if len(line) == 0 {
			continue
		}
		var msg meshapi.MapMessage
		if err := json.Unmarshal(line, &msg); err != nil {
			return progressed, fmt.Errorf("decoding map stream line: %w", err)
		}
		change, err := m.Apply(&msg)
		if err != nil {
			// Our map can no longer be trusted: ask for a full one. Keep
			// the peers, so the full map is diffed against what the data
			// plane really holds.
			m.resync = true
			return progressed, err
		}
		progressed = true
		watchdog.Reset(deadAfter(m.KeepaliveInterval, firstTimeout))
		if !c.status.connected() {
			c.status.set(func(s *StreamStatus) { s.State, s.Since, s.LastError = StreamConnected, time.Now(), "" })
			c.log.Info("map stream connected", "version", m.Version, "peers", len(m.Peers))
		}
		c.status.set(func(s *StreamStatus) { s.Version = m.Version })
		if !change.Empty() || change.Full {
			h(change, m)
		}
	}
}

// deadAfter is how long a stream may stay silent: three keepalive
// intervals, as the protocol says.
func deadAfter(keepalive, fallback time.Duration) time.Duration {
	if keepalive <= 0 {
		return fallback
	}
	return 3 * keepalive
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// streamStatus guards a StreamStatus.
type streamStatus struct {
	mu sync.Mutex
	s  StreamStatus
}

func (t *streamStatus) get() StreamStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	if s.State == "" {
		s.State = StreamConnecting
	}
	return s
}

func (t *streamStatus) set(f func(*StreamStatus)) {
	t.mu.Lock()
	f(&t.s)
	t.mu.Unlock()
}

func (t *streamStatus) connected() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.s.State == StreamConnected
}

func (t *streamStatus) stop(why string) {
	t.set(func(s *StreamStatus) {
		s.State, s.Since = StreamStopped, time.Now()
		if why != "" {
			s.LastError = why
		}
	})
}
