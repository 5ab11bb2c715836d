package controlclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// maxAnswerBytes bounds a non-stream answer (register, logout, errors).
// Answers are small; the bound only protects against a broken server.
const maxAnswerBytes = 1 << 20

// Options tune a Client. The zero value is usable.
type Options struct {
	// HTTPClient carries every request. Nil means a client with sane dial
	// and header timeouts and no overall timeout (the map stream is long).
	HTTPClient *http.Client
	// Logger receives one line per event; nil discards.
	Logger *slog.Logger
	// UserAgent is sent with every request.
	UserAgent string
	// RootCAs, when not nil, are the only authorities an https
	// coordinator's certificate may chain to (a private CA); nil means the
	// system's roots. Ignored with HTTPClient.
	RootCAs *x509.CertPool
}

// Client talks to the coordinator on behalf of one node: to one of a list
// of replicas, failing over to the next when one fails (see New). After
// Register it holds the node secret (in memory only) and authenticates
// every call with it. Its methods are safe for concurrent use.
type Client struct {
	coords *coordinators
	hc     *http.Client
	log    *slog.Logger
	ua     string

	mu     sync.Mutex
	secret string

	status streamStatus
}

// New returns a client for the coordinator at base ("http://host:port" or
// "https://…"; a bare "host:port" means http), or for the replicas of one
// mesh given as a comma-separated list of such addresses. With a list, the
// client uses one replica at a time and stays with it while it works; a
// failure another replica could serve (unreachable, a 5xx or 429, an answer
// from something in front of the coordinator) moves the next attempt to the
// next replica, round robin. The coordinator's own refusals (4xx) are final
// whichever replica gave them: all of them share one state.
func New(base string, opts Options) (*Client, error) {
	urls, err := ParseCoordinatorList(base)
	if err != nil {
		return nil, err
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient(opts.RootCAs)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "meshinit"
	}
	return &Client{coords: &coordinators{urls: urls, log: log}, hc: hc, log: log, ua: ua}, nil
}

// ParseCoordinatorURL checks and normalises a coordinator address.
func ParseCoordinatorURL(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("coordinator address is empty: set MESH_COORDINATOR to the meshcoord URL, e.g. http://127.0.0.1:8080")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("coordinator address %q: %v (want a URL such as http://127.0.0.1:8080)", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("coordinator address %q: scheme %q not supported (want http or https)", s, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("coordinator address %q: no host (want a URL such as http://127.0.0.1:8080)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("coordinator address %q: want only scheme, host, port and an optional path prefix", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// URL returns the base URL of the coordinator in use now.
func (c *Client) URL() string { return c.coords.current().String() }

// WatchURL returns the base URL of the coordinator in use now, as URL
// does, and a channel that is closed when the client moves off it (its
// coordinator list failed over); the channel is never sent on. To follow
// the coordinator, call WatchURL again once the channel is closed: the
// pair it returns is consistent, so no move between two calls is missed.
// Nothing needs releasing (no goroutine, no registration): a caller that
// stops waiting just drops the channel. With a single coordinator the
// channel is never closed. Safe for concurrent use; callers waiting at the
// same time share one channel.
func (c *Client) WatchURL() (base string, changed <-chan struct{}) {
	u, ch := c.coords.watch()
	return u.String(), ch
}

func defaultHTTPClient(rootCAs *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: rootCAs, MinVersion: tls.VersionTLS12},
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
	}
	return &http.Client{Transport: tr}
}

// HasSecret reports whether the client is registered (holds a node secret).
func (c *Client) HasSecret() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.secret != ""
}

func (c *Client) setSecret(s string) {
	c.mu.Lock()
	c.secret = s
	c.mu.Unlock()
}

func (c *Client) bearer() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secret == "" {
		return "", errors.New("not registered: no node secret")
	}
	return "Bearer " + c.secret, nil
}

// newRequest builds a request to path; auth adds the node secret.
func (c *Client) newRequest(ctx context.Context, method, path string, query url.Values, body any, auth bool) (*http.Request, error) {
	u := *c.coords.current()
	u.Path += path
	if query != nil {
		u.RawQuery = query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.ua)
	if auth {
		h, err := c.bearer()
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", h)
	}
	return req, nil
}

// do sends req and decodes a 2xx JSON answer into out (nil: discard it).
// Transport failures come back as *UnreachableError, the coordinator's
// error answers as *meshapi.Error, other error answers as
// *ForeignAnswerError.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.failed(req, noAnswer(req, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.failed(req, c.readError(resp))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
		return nil
	}
	return decodeLenient(resp.Body, maxAnswerBytes, out)
}

// decodeLenient reads one JSON value of at most limit bytes into v,
// ignoring unknown fields: a newer coordinator may add fields.
func decodeLenient(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("answer larger than %d bytes", limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("decoding answer: %w", err)
	}
	return nil
}

// readError turns a non-2xx answer into the coordinator's *meshapi.Error
// when the body is its ErrorBody, and into a *ForeignAnswerError when it is
// not: then something in front of the coordinator answered.
func (c *Client) readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	var eb meshapi.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		e := eb.Error
		e.Status = resp.StatusCode
		return &e
	}
	body := strings.TrimSpace(string(data))
	if len(body) > 200 {
		body = body[:200] + "…"
	}
	where := c.URL()
	if resp.Request != nil {
		where = baseOf(resp.Request)
	}
	return &ForeignAnswerError{URL: where, Status: resp.StatusCode, Body: body}
}

// failed returns err, after moving off the coordinator req went to when
// another one could serve what it failed (the caller's ctx did not end):
// a retryable failure, or a certificate this node does not trust (that
// replica's certificate may be the one that is wrong).
func (c *Client) failed(req *http.Request, err error) error {
	var ce *CertificateError
	if req.Context().Err() == nil && (retryable(err) || errors.As(err, &ce)) {
		c.coords.failed(req.URL, err)
	}
	return err
}

// baseOf names the coordinator a request went to, for messages.
func baseOf(req *http.Request) string {
	u := url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host}
	return u.String()
}

// Authorization returns the "Bearer <node secret>" header value for other
// connections to this coordinator (the relay). Never log it.
func (c *Client) Authorization() (string, error) { return c.bearer() }
