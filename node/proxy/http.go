package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// HTTP proxying: CONNECT tunnels, and absolute-URI requests
// ("GET http://host/path HTTP/1.1") forwarded with keep-alive on both sides.

// maxHeaderBytes bounds a request head, as net/http's server does.
const maxHeaderBytes = 1 << 20

// httpError is a request the proxy refuses, with the status to answer.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func httpErr(status int, format string, args ...any) *httpError {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

// proxyRequest is a parsed request to the proxy.
type proxyRequest struct {
	req     *http.Request
	connect bool   // CONNECT: tunnel to target
	target  string // host:port to dial
}

// readProxyRequest reads one request head from r and works out where it
// goes. Requests in origin form ("GET /path") are refused: they are meant
// for a web server, not for a proxy.
func readProxyRequest(r *bufio.Reader) (*proxyRequest, error) {
	req, err := http.ReadRequest(r)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, err // the client closed an idle keep-alive connection
		}
		if errors.Is(err, errHeadTooLarge) {
			return nil, httpErr(http.StatusRequestHeaderFieldsTooLarge, "%v", err)
		}
		return nil, httpErr(http.StatusBadRequest, "malformed HTTP request: %v", err)
	}
	pr := &proxyRequest{req: req}
	if req.Method == http.MethodConnect {
		// CONNECT's target is an authority, host:port, with a port.
		host, port, err := net.SplitHostPort(req.RequestURI)
		if err != nil || host == "" {
			return nil, httpErr(http.StatusBadRequest, "CONNECT target %q: want host:port", req.RequestURI)
		}
		if err := checkPort(port); err != nil {
			return nil, httpErr(http.StatusBadRequest, "CONNECT target %q: %v", req.RequestURI, err)
		}
		if err := checkHostName(host); err != nil {
			return nil, httpErr(http.StatusBadRequest, "CONNECT target: %v", err)
		}
		pr.connect, pr.target = true, net.JoinHostPort(host, port)
		return pr, nil
	}
	if !req.URL.IsAbs() {
		return nil, httpErr(http.StatusBadRequest, "request target %q is not an absolute URI: this port is a proxy; send requests as http://host/path, or use CONNECT", req.RequestURI)
	}
	if req.URL.Scheme != "http" {
		return nil, httpErr(http.StatusBadRequest, "scheme %q: the proxy forwards plain http:// requests; use CONNECT for %s", req.URL.Scheme, req.URL.Scheme)
	}
	host, port := req.URL.Hostname(), req.URL.Port()
	if host == "" {
		return nil, httpErr(http.StatusBadRequest, "request URI %q has no host", req.RequestURI)
	}
	if port == "" {
		port = "80"
	} else if err := checkPort(port); err != nil {
		return nil, httpErr(http.StatusBadRequest, "request URI %q: %v", req.RequestURI, err)
	}
	if err := checkHostName(host); err != nil {
		return nil, httpErr(http.StatusBadRequest, "request URI: %v", err)
	}
	pr.target = net.JoinHostPort(host, port)
	return pr, nil
}

func checkPort(p string) error {
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return fmt.Errorf("port %q is not 1-65535", p)
	}
	return nil
}

// errHeadTooLarge is what the connection reader returns once a request
// head has grown past maxHeaderBytes.
var errHeadTooLarge = errors.New("request head larger than 1 MiB")

// readLimit sits between the client connection and its bufio.Reader so a
// client cannot make the proxy buffer an endless request head: while a head
// is read, at most left more bytes come from the connection; left < 0
// means unlimited (bodies and tunnels).
type readLimit struct {
	src  io.Reader
	left int64
}

func (l *readLimit) Read(p []byte) (int, error) {
	if l.left < 0 {
		return l.src.Read(p)
	}
	if l.left == 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.src.Read(p)
	l.left -= int64(n)
	return n, err
}

// hopHeaders are meaningful for one connection only and are not forwarded
// (RFC 9110 §7.6.1).
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// serveHTTP answers requests on c until the client or an answer ends the
// connection. A CONNECT turns the connection into a tunnel.
func (s *Server) serveHTTP(ctx context.Context, c net.Conn, r *bufio.Reader, lim *readLimit) {
	log := s.log().With("proto", "http", "client", c.RemoteAddr().String())
	for {
		lim.left = int64(max(maxHeaderBytes-r.Buffered(), 0)) // the buffered bytes count too
		pr, err := readProxyRequest(r)
		lim.left = -1
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				writeHTTPError(c, he.status, he.msg)
				log.Info("proxy: bad HTTP request", "err", err)
			}
			return
		}
		s.clearHandshakeDeadline(c)
		if pr.connect {
			s.serveConnect(ctx, c, r, pr, log)
			return
		}
		if !s.forwardHTTP(ctx, c, pr, log) {
			return
		}
		s.setHandshakeDeadline(c) // waiting for the next request on a keep-alive connection
	}
}

func (s *Server) serveConnect(ctx context.Context, c net.Conn, r *bufio.Reader, pr *proxyRequest, log interface{ Info(string, ...any) }) {
	up, err := s.dial(ctx, pr.target)
	if err != nil {
		status := http.StatusBadGateway
		if socksDialCode(err) == socksTTLExpired {
			status = http.StatusGatewayTimeout
		}
		writeHTTPError(c, status, fmt.Sprintf("CONNECT %s: %v", pr.target, err))
		log.Info("proxy: CONNECT failed", "target", pr.target, "err", err)
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		up.Close()
		return
	}
	s.relay(c, r, up)
}

// forwardHTTP sends one absolute-URI request upstream and relays the
// answer. It reports whether the client connection can carry another
// request.
func (s *Server) forwardHTTP(ctx context.Context, c net.Conn, pr *proxyRequest, log interface{ Info(string, ...any) }) bool {
	in := pr.req
	out := in.Clone(ctx)
	out.RequestURI = "" // a client request, not a server one
	out.Close = false   // the upstream connection is the transport's to manage
	removeHopHeaders(out.Header)
	var body *signalBody
	if in.Body != nil && in.Body != http.NoBody {
		body = &signalBody{ReadCloser: in.Body, closed: make(chan struct{})}
		out.Body = body
	} else {
		out.Body = nil
	}
	resp, err := s.transport().RoundTrip(out)
	if err != nil {
		status := http.StatusBadGateway
		if socksDialCode(err) == socksTTLExpired {
			status = http.StatusGatewayTimeout
		}
		writeHTTPError(c, status, fmt.Sprintf("%s %s: %v", in.Method, in.URL, err))
		log.Info("proxy: HTTP request failed", "method", in.Method, "url", in.URL.String(), "err", err)
		return false
	}
	removeHopHeaders(resp.Header)
	resp.Close = resp.Close || in.Close
	err = resp.Write(c)
	resp.Body.Close()
	if err != nil || resp.Close {
		return false
	}
	// The next request starts where this one's body ends. The transport
	// closes the body (which reads it to its end) possibly after RoundTrip
	// returned, so wait for that before reading on.
	if body != nil {
		select {
		case <-body.closed:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// signalBody tells when the transport is done with a request body.
type signalBody struct {
	io.ReadCloser
	once   sync.Once
	closed chan struct{}
}

func (b *signalBody) Close() error {
	err := b.ReadCloser.Close() // http's server-side body reads to its end on Close
	b.once.Do(func() { close(b.closed) })
	return err
}

// writeHTTPError answers with a plain-text error and closes the exchange.
func writeHTTPError(w io.Writer, status int, msg string) {
	body := msg + "\n"
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), len(body), body)
}
