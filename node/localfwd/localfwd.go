// Package localfwd gives apps that know nothing of proxies a local door to
// mesh peers (MESH_CONNECT=5432:db:5432,6379:cache:6379): for each rule it
// listens on 127.0.0.1:LOCAL and connects every accepted connection to
// NAME:PORT over the mesh, then copies bytes both ways, half-close
// included (proxy.Relay).
//
// A connection whose peer cannot be reached (not in the map, refused, no
// answer) is closed and logged; the listener stays up, so the same app
// succeeds once the peer is there.
package localfwd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/proxy"
)

// Rule is one MESH_CONNECT entry.
type Rule struct {
	Local  uint16 // port on 127.0.0.1
	Remote hostport.HostPort
}

// String is the rule as written: "5432:db:5432".
func (r Rule) String() string {
	return strconv.Itoa(int(r.Local)) + ":" + r.Remote.String()
}

// Parse reads MESH_CONNECT: comma-separated LOCAL:NAME:PORT rules. The
// error quotes the first bad entry; two rules on one local port are an
// error too.
func Parse(s string) ([]Rule, error) {
	var rules []Rule
	byPort := map[uint16]string{}
	for _, e := range hostport.Entries(s) {
		r, err := parseRule(e)
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", e, err)
		}
		if prev, dup := byPort[r.Local]; dup {
			return nil, fmt.Errorf("entries %q and %q both listen on local port %d", prev, e, r.Local)
		}
		byPort[r.Local] = e
		rules = append(rules, r)
	}
	return rules, nil
}

func parseRule(e string) (Rule, error) {
	local, remote, ok := strings.Cut(e, ":")
	if !ok || !strings.Contains(remote, ":") {
		return Rule{}, errors.New("want LOCAL_PORT:NAME:PORT, e.g. 5432:db:5432")
	}
	lp, err := hostport.ParsePort(local)
	if err != nil {
		return Rule{}, fmt.Errorf("local port: %w", err)
	}
	hp, err := hostport.Parse(remote)
	if err != nil {
		return Rule{}, err
	}
	return Rule{Local: lp, Remote: hp}, nil
}

// DialFunc connects over the mesh; it should fail at once for a name that
// is not in the map (the node's DialMesh does).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// DialTimeout bounds connecting to the peer for one accepted connection.
const DialTimeout = 30 * time.Second

// Forwarders are the listeners of a set of rules.
type Forwarders struct {
	rules []Rule
	lns   []net.Listener

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// ListenError is a local port that could not be listened on.
type ListenError struct {
	Rule Rule
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("MESH_CONNECT entry %q: cannot listen on %s (local port %d): %v; choose a free local port",
		e.Rule.String(), e.Addr, e.Rule.Local, e.Err)
}

func (e *ListenError) Unwrap() error { return e.Err }

// Listen opens 127.0.0.1:LOCAL for every rule (LOCAL 0, which Parse never
// gives, takes a free port: see Addrs), or none of them: the error
// (a *ListenError) names the port that could not be opened.
func Listen(rules []Rule) (*Forwarders, error) {
	f := &Forwarders{rules: rules, conns: map[net.Conn]struct{}{}}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	for _, r := range rules {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(r.Local)))
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			f.Close()
			return nil, &ListenError{Rule: r, Addr: addr, Err: err}
		}
		f.lns = append(f.lns, ln)
	}
	return f, nil
}

// Serve starts accepting on every listener; each connection is dialled
// with dial. It returns at once.
func (f *Forwarders) Serve(dial DialFunc, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i, ln := range f.lns {
		r := f.rules[i]
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.accept(ln, r, dial, log.With("component", "connect", "local", ln.Addr().String(), "remote", r.Remote.String()))
		}()
	}
}

func (f *Forwarders) accept(ln net.Listener, r Rule, dial DialFunc, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("accepting stopped", "err", err)
			}
			return
		}
		if !f.track(c, true) {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.track(c, false)
			f.forward(c, r, dial, log)
		}()
	}
}

// forward connects c to the rule's peer and relays until both sides end.
func (f *Forwarders) forward(c net.Conn, r Rule, dial DialFunc, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(f.ctx, DialTimeout)
	remote, err := dial(ctx, "tcp", r.Remote.String())
	cancel()
	if err != nil {
		log.Warn("cannot reach the peer; connection closed", "err", err)
		c.Close()
		return
	}
	if !f.track(remote, true) {
		remote.Close()
		c.Close()
		return
	}
	defer f.track(remote, false)
	proxy.Relay(c, remote)
}

// track adds (on) or removes a connection that Close must end; it reports
// false when Close has begun.
func (f *Forwarders) track(c net.Conn, on bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !on {
		delete(f.conns, c)
		return true
	}
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

// Addrs are the listeners' addresses, in the order of the rules.
func (f *Forwarders) Addrs() []net.Addr {
	out := make([]net.Addr, len(f.lns))
	for i, ln := range f.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Close stops listening, ends every forwarded connection and waits for
// them. It is idempotent.
func (f *Forwarders) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	conns := f.conns
	f.conns = map[net.Conn]struct{}{}
	f.mu.Unlock()
	f.cancel()
	for _, ln := range f.lns {
		ln.Close()
	}
	for c := range conns {
		c.Close()
	}
	f.wg.Wait()
	return nil
}
