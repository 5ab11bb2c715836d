// Package adminclient talks to meshcoord's admin API, over the local admin
// socket or over HTTP(S) with the admin token. The meshcoord CLI and the
// integration helpers use it.
package adminclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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
)

// Client is an admin API client.
type Client struct {
	base  string // scheme://host, no trailing slash
	token string
	hc    *http.Client
	where string // for error messages
}

// NewSocket returns a client for the admin socket at path.
func NewSocket(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	return &Client{base: "http://meshcoord", hc: &http.Client{Transport: tr}, where: "admin socket " + path}
}

// NewHTTP returns a client for the server at serverURL (http:// or https://)
// that sends token. tlsConfig may be nil (system roots).
func NewHTTP(serverURL, token string, tlsConfig *tls.Config) (*Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q: want http://host:port or https://host:port", serverURL)
	}
	if token == "" {
		return nil, fmt.Errorf("talking to %s needs the admin token: set MESHCOORD_ADMIN_TOKEN", serverURL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConfig
	return &Client{base: u.Scheme + "://" + u.Host, token: token, hc: &http.Client{Transport: tr}, where: serverURL}, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if raw, ok := body.(rawBody); ok {
		rd = bytes.NewReader(raw)
	} else if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach meshcoord at %s: %w (is \"meshcoord serve\" running?)", c.where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return readError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, meshapi.MaxStreamLineBytes)).Decode(out); err != nil {
		return fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	return nil
}

func readError(resp *http.Response) error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb meshapi.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
		e := eb.Error
		e.Status = resp.StatusCode
		return &e
	}
	return &meshapi.Error{Code: meshapi.ErrInternal, Status: resp.StatusCode,
		Message: fmt.Sprintf("unexpected answer: %s", strings.TrimSpace(string(data)))}
}

// CreateKey creates an auth key; the answer holds the full key, once.
func (c *Client) CreateKey(ctx context.Context, req meshapi.KeyCreateRequest) (*meshapi.KeyCreateResponse, error) {
	var out meshapi.KeyCreateResponse
	return &out, c.do(ctx, "POST", meshapi.PathAdminKeys, req, &out)
}

// Keys lists the auth keys (without their secrets).
func (c *Client) Keys(ctx context.Context) ([]meshapi.AuthKey, error) {
	var out []meshapi.AuthKey
	return out, c.do(ctx, "GET", meshapi.PathAdminKeys, nil, &out)
}

// RevokeKey revokes a key by id.
func (c *Client) RevokeKey(ctx context.Context, id string) (*meshapi.AuthKey, error) {
	var out meshapi.AuthKey
	return &out, c.do(ctx, "DELETE", meshapi.PathAdminKeys+"/"+url.PathEscape(id), nil, &out)
}

// Nodes lists every node.
func (c *Client) Nodes(ctx context.Context) ([]meshapi.Node, error) {
	var out []meshapi.Node
	return out, c.do(ctx, "GET", meshapi.PathAdminNodes, nil, &out)
}

// Node shows one node by id or name.
func (c *Client) Node(ctx context.Context, ref string) (*meshapi.Node, error) {
	var out meshapi.Node
	return &out, c.do(ctx, "GET", meshapi.PathAdminNodes+"/"+url.PathEscape(ref), nil, &out)
}

// DeleteNode deletes a node (reason admin).
func (c *Client) DeleteNode(ctx context.Context, ref string) (*meshapi.NodeActionResponse, error) {
	var out meshapi.NodeActionResponse
	return &out, c.do(ctx, "DELETE", meshapi.PathAdminNodes+"/"+url.PathEscape(ref), nil, &out)
}

// ExpireNode ends a node's session (logged out; ephemeral nodes deleted).
func (c *Client) ExpireNode(ctx context.Context, ref string) (*meshapi.NodeActionResponse, error) {
	var out meshapi.NodeActionResponse
	return &out, c.do(ctx, "POST", meshapi.PathAdminNodes+"/"+url.PathEscape(ref)+"/expire", nil, &out)
}

// RenameNode gives a node a new name.
func (c *Client) RenameNode(ctx context.Context, ref, name string) (*meshapi.NodeActionResponse, error) {
	var out meshapi.NodeActionResponse
	return &out, c.do(ctx, "POST", meshapi.PathAdminNodes+"/"+url.PathEscape(ref)+"/rename", meshapi.RenameRequest{Name: name}, &out)
}

// Events calls fn for every event after since, in order. With follow it
// keeps waiting for new ones until ctx ends or fn returns an error (which
// Events returns; return ErrStop to end without an error).
func (c *Client) Events(ctx context.Context, since uint64, follow bool, fn func(meshapi.Event) error) error {
	q := url.Values{"since": {strconv.FormatUint(since, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+meshapi.PathAdminEvents+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot reach meshcoord at %s: %w (is \"meshcoord serve\" running?)", c.where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return readError(resp)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e meshapi.Event
		if err := meshapi.DecodeBytes(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("reading events: %w", err)
		}
		if err := fn(e); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading events: %w", err)
	}
	if follow {
		return fmt.Errorf("the event stream from %s ended (server stopped?)", c.where)
	}
	return nil
}

// ErrStop ends Events without an error.
var ErrStop = errors.New("stop")

// Timeout is a sensible per-call bound for one-shot admin calls.
const Timeout = 30 * time.Second

// rawBody is a request body sent as it is (a policy document, which may
// hold comments, is not JSON-encoded again).
type rawBody []byte

// Policy returns the access policy in force.
func (c *Client) Policy(ctx context.Context) (*meshapi.PolicyResponse, error) {
	var out meshapi.PolicyResponse
	return &out, c.do(ctx, "GET", meshapi.PathAdminPolicy, nil, &out)
}

// SetPolicy puts the policy document doc in force; a document that does
// not parse or whose tests fail is refused (error code policy_invalid).
func (c *Client) SetPolicy(ctx context.Context, doc []byte) (*meshapi.PolicyResponse, error) {
	var out meshapi.PolicyResponse
	return &out, c.do(ctx, "PUT", meshapi.PathAdminPolicy, rawBody(doc), &out)
}

// ClearPolicy removes the policy: every node may reach every other again.
func (c *Client) ClearPolicy(ctx context.Context) (*meshapi.PolicyResponse, error) {
	var out meshapi.PolicyResponse
	return &out, c.do(ctx, "DELETE", meshapi.PathAdminPolicy, nil, &out)
}

// CheckPolicy parses doc and runs its tests on the coordinator without
// putting it in force.
func (c *Client) CheckPolicy(ctx context.Context, doc []byte) (*meshapi.PolicyCheckResponse, error) {
	var out meshapi.PolicyCheckResponse
	return &out, c.do(ctx, "POST", meshapi.PathAdminPolicyCheck, rawBody(doc), &out)
}
