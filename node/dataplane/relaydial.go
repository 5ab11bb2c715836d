package dataplane

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/meshapi/relayproto"
)

// RelayConfig tells the device how to reach the coordinator's relay.
type RelayConfig struct {
	// URL is the coordinator's base URL (http:// or https://); the relay is
	// at its /v1/relay.
	URL string
	// WatchURL, when set, is asked at every connection instead of URL: a
	// node with several coordinator replicas follows the one it uses. It
	// returns the base URL in use now and a channel closed when that
	// changes (controlclient.Client.WatchURL); a connected client waits on
	// it and reconnects to the new coordinator's relay at once.
	WatchURL func() (base string, changed <-chan struct{})
	// Authorization returns the "Bearer <node secret>" header value. It is
	// asked at every connection and never logged.
	Authorization func() (string, error)
	// TLS is the client TLS configuration for https URLs; nil means the
	// system's roots.
	TLS *tls.Config
	// Proxy picks an HTTP proxy for a URL (nil result: none); nil means
	// HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment. The
	// connection goes through it with HTTP CONNECT.
	Proxy func(*url.URL) (*url.URL, error)
	// WebSocket makes the first attempt a WebSocket instead of the plain
	// upgrade (either way the other is tried when one is refused).
	WebSocket bool
}

func (cfg *RelayConfig) baseURL() string {
	base, _ := cfg.watch()
	return base
}

// watch returns the URL to use now and a channel closed when it changes:
// nil (never ready) without WatchURL, since URL never changes.
func (cfg *RelayConfig) watch() (string, <-chan struct{}) {
	if cfg.WatchURL != nil {
		return cfg.WatchURL()
	}
	return cfg.URL, nil
}

// dialTimeout bounds one connection attempt (proxy, TLS and upgrade).
const dialTimeout = 15 * time.Second

// relayConn is an established relay connection.
type relayConn struct {
	conn     net.Conn  // writes and Close
	src      io.Reader // reads (buffered bytes first)
	kind     string    // relayproto.KindRaw or KindWebSocket
	stunPort int
	remote   net.Addr
	base     string // the coordinator URL it was dialed at
}

// errRelayRefused is an answer that retrying the other upgrade form
// cannot fix (authentication).
type errRelayRefused struct{ err *meshapi.Error }

func (e errRelayRefused) Error() string { return "relay refused the connection: " + e.err.Error() }

// dialRelay connects to the relay, via a proxy if one applies, and
// upgrades: kind first, the other form if that one is refused.
func dialRelay(ctx context.Context, cfg *RelayConfig, kind string) (*relayConn, error) {
	rc, err := dialRelayKind(ctx, cfg, kind)
	var refused errRelayRefused
	if err == nil || errors.As(err, &refused) || ctx.Err() != nil {
		return rc, err
	}
	other := relayproto.KindWebSocket
	if kind == relayproto.KindWebSocket {
		other = relayproto.KindRaw
	}
	rc, err2 := dialRelayKind(ctx, cfg, other)
	if err2 != nil {
		return nil, fmt.Errorf("%s: %w; %s: %w", kind, err, other, err2)
	}
	return rc, nil
}

func dialRelayKind(ctx context.Context, cfg *RelayConfig, kind string) (*relayConn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	base := cfg.baseURL()
	u, err := url.Parse(strings.TrimSuffix(base, "/") + meshapi.PathRelay)
	if err != nil {
		return nil, fmt.Errorf("relay URL: %w", err)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), map[string]string{"https": "443"}[u.Scheme]+map[string]string{"http": "80"}[u.Scheme])
	}
	proxyFn := cfg.Proxy
	if proxyFn == nil {
		proxyFn = func(u *url.URL) (*url.URL, error) { return http.ProxyFromEnvironment(&http.Request{URL: u}) }
	}
	proxy, err := proxyFn(u)
	if err != nil {
		return nil, fmt.Errorf("choosing a proxy: %w", err)
	}
	var d net.Dialer
	target := host
	if proxy != nil {
		target = proxy.Host
		if proxy.Port() == "" {
			target = net.JoinHostPort(proxy.Hostname(), "80")
		}
	}
	nc, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			nc.Close()
		}
	}()
	if dl, has := ctx.Deadline(); has {
		nc.SetDeadline(dl)
	}
	var br *bufio.Reader
	if proxy != nil {
		if br, err = proxyConnect(nc, proxy, host); err != nil {
			return nil, err
		}
		if br.Buffered() > 0 {
			return nil, errors.New("proxy sent data before the tunnel was used")
		}
	}
	var c net.Conn = nc
	if u.Scheme == "https" {
		tc := &tls.Config{}
		if cfg.TLS != nil {
			tc = cfg.TLS.Clone()
		}
		if tc.ServerName == "" {
			tc.ServerName = u.Hostname()
		}
		tc.NextProtos = []string{"http/1.1"} // an upgrade needs HTTP/1.1
		tlsConn := tls.Client(nc, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS with %s: %w", u.Host, err)
		}
		c = tlsConn
	}
	auth, err := cfg.Authorization()
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, u.String(), nil)
	req.Header.Set("Authorization", auth)
	req.Header.Set("User-Agent", "meshinit")
	req.Header.Set("Connection", "Upgrade")
	wsKey := ""
	if kind == relayproto.KindWebSocket {
		wsKey = relayproto.NewWebSocketKey()
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Key", wsKey)
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Protocol", relayproto.Protocol)
	} else {
		req.Header.Set("Upgrade", relayproto.Protocol)
	}
	if err := req.Write(c); err != nil {
		return nil, err
	}
	br = bufio.NewReaderSize(c, 256<<10)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("reading the relay's answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, refusal(resp)
	}
	if kind == relayproto.KindWebSocket && resp.Header.Get("Sec-WebSocket-Accept") != relayproto.WebSocketAccept(wsKey) {
		return nil, errors.New("relay answered the WebSocket handshake with a wrong Sec-WebSocket-Accept")
	}
	c.SetDeadline(time.Time{})
	rc := &relayConn{conn: c, src: br, kind: kind, remote: nc.RemoteAddr(), base: base}
	if proxy != nil {
		rc.remote = nil // the proxy's address, not the coordinator's
	}
	rc.stunPort, _ = strconv.Atoi(resp.Header.Get(relayproto.HeaderSTUNPort))
	if kind == relayproto.KindWebSocket {
		ws := relayproto.NewWSConn(c, br, true)
		rc.conn, rc.src = ws, ws
	}
	ok = true
	return rc, nil
}

// refusal turns a non-101 answer into an error; authentication failures
// are final for this attempt (the other form would fail the same way).
func refusal(resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	e := &meshapi.Error{Status: resp.StatusCode, Code: meshapi.ErrInternal, Message: strings.TrimSpace(string(body))}
	var eb meshapi.ErrorBody
	if jsonErr := json.Unmarshal(body, &eb); jsonErr == nil && eb.Error.Code != "" {
		e.Code, e.Message = eb.Error.Code, eb.Error.Message
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return errRelayRefused{e}
	}
	return e
}

// proxyConnect opens a tunnel to host through an HTTP proxy.
func proxyConnect(c net.Conn, proxy *url.URL, host string) (*bufio.Reader, error) {
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: host}, Host: host, Header: http.Header{}}
	if u := proxy.User; u != nil {
		pw, _ := u.Password()
		req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(u.Username()+":"+pw)))
	}
	if err := req.Write(c); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", proxy.Redacted(), err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: reading CONNECT answer: %w", proxy.Redacted(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy %s refused CONNECT %s: %s", proxy.Redacted(), host, resp.Status)
	}
	return br, nil
}
