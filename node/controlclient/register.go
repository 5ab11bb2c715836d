package controlclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/meshinit/meshinit/meshapi"
)

// Registration is what a node asks for when it joins.
type Registration struct {
	// AuthKey is the secret key; it is sent once and never logged.
	AuthKey   string
	Hostname  string
	PublicKey meshapi.Key
	Endpoints []netip.AddrPort
	// NoIPv6: the node cannot carry IPv6 (TUN mode where IPv6 is
	// disabled); the coordinator then gives it no IPv6 address.
	NoIPv6 bool
}

// Register joins the mesh. It retries every transient failure with
// backoff until ctx ends: an unreachable coordinator (refused, reset, a
// connect that timed out), a 5xx or 429, an answer from something in front
// of the coordinator (ForeignAnswerError). The coordinator's own refusal
// (a refused key, another 4xx with its error body) fails at once. On
// success the client keeps the node secret.
//
// The error says which failure it was: KeyRefusal reports a refused key,
// *UnreachableError a coordinator that never answered (wrapped with the
// number of attempts when ctx ran out).
func (c *Client) Register(ctx context.Context, r Registration) (*meshapi.RegisterResponse, error) {
	if r.AuthKey == "" {
		return nil, errors.New("no auth key: set MESH_AUTHKEY or MESH_AUTHKEY_FILE")
	}
	// One node secret for every attempt: a retry whose first attempt was
	// registered (the answer lost, a 5xx, a timeout) gets that same node.
	body := meshapi.RegisterRequest{AuthKey: r.AuthKey, Hostname: r.Hostname, PublicKey: r.PublicKey, Endpoints: r.Endpoints,
		Secret: meshapi.NewNodeSecret(), NoIPv6: r.NoIPv6}
	var bo Backoff
	start := time.Now()
	for attempt := 1; ; attempt++ {
		resp, err := c.registerOnce(ctx, &body)
		if err == nil {
			c.setSecret(resp.Secret)
			c.log.Info("registered", "name", resp.Node.Name, "ipv4", resp.Node.IPv4, "ipv6", AddrOrNone(resp.Node.IPv6),
				"id", resp.Node.ID, "ephemeral", resp.Node.Ephemeral, "attempts", attempt)
			return resp, nil
		}
		if body.NoIPv6 && unknownField(err, "no_ipv6") {
			// An older coordinator, whose strict decoding refuses the field
			// (and changed nothing): register as before, with both
			// addresses. Peers will then see an IPv6 address this node does
			// not carry, as they did before no_ipv6 existed.
			c.log.Warn("the coordinator does not know no_ipv6 (an older meshcoord): registering with an IPv6 address this node cannot carry; upgrade meshcoord so that peers do not try it")
			body.NoIPv6 = false
			continue
		}
		if ctx.Err() != nil || !retryable(err) {
			if ctx.Err() != nil && attempt > 1 {
				return nil, fmt.Errorf("registering: gave up after %d attempts in %v: %w", attempt, time.Since(start).Round(time.Millisecond), err)
			}
			return nil, err
		}
		d := bo.Next()
		c.log.Warn("register failed, retrying", "err", err, "attempt", attempt, "retry_in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("registering: gave up after %d attempts in %v: %w", attempt, time.Since(start).Round(time.Millisecond), err)
		case <-t.C:
		}
	}
}

func (c *Client) registerOnce(ctx context.Context, body *meshapi.RegisterRequest) (*meshapi.RegisterResponse, error) {
	req, err := c.newRequest(ctx, http.MethodPost, meshapi.PathRegister, nil, body, false)
	if err != nil {
		return nil, err
	}
	var resp meshapi.RegisterResponse
	if err := c.do(req, &resp); err != nil {
		return nil, err
	}
	if resp.Secret == "" || resp.Node.ID == 0 || !resp.Node.IPv4.IsValid() {
		return nil, fmt.Errorf("coordinator answered register without a node secret, id or address: is %s a meshcoord?", baseOf(req))
	}
	return &resp, nil
}

// ReportEndpoints replaces the node's candidate UDP endpoints at the
// coordinator, which tells the peers. One attempt; the caller retries.
func (c *Client) ReportEndpoints(ctx context.Context, eps []netip.AddrPort) error {
	if eps == nil {
		eps = []netip.AddrPort{}
	}
	req, err := c.newRequest(ctx, http.MethodPost, meshapi.PathEndpoints, nil, meshapi.EndpointsRequest{Endpoints: eps}, true)
	if err != nil {
		return err
	}
	return c.do(req, nil)
}

// Logout ends the node's membership: an ephemeral node is deleted at once.
// It is tried until it gets an answer or ctx ends (the caller bounds it by
// the stop budget). Afterwards the client forgets its secret, whatever the
// outcome, so nothing runs on with a dead identity. A node the coordinator
// already forgot (logged out, collected) counts as logged out.
func (c *Client) Logout(ctx context.Context) (*meshapi.LogoutResponse, error) {
	defer c.setSecret("")
	var bo Backoff
	for attempt := 1; ; attempt++ {
		// A request per attempt: the next may go to another replica.
		req, err := c.newRequest(ctx, http.MethodPost, meshapi.PathLogout, nil, nil, true)
		if err != nil {
			return nil, err
		}
		var resp meshapi.LogoutResponse
		err = c.do(req, &resp)
		if err == nil {
			return &resp, nil
		}
		if IsLoggedOut(err) {
			return &meshapi.LogoutResponse{Deleted: false}, fmt.Errorf("%w: %w", ErrAlreadyGone, err)
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, err
		}
		d := bo.Next()
		c.log.Warn("logout failed, retrying", "err", err, "attempt", attempt, "retry_in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("logout: no answer after %d attempts: %w", attempt, err)
		case <-t.C:
		}
	}
}

// ErrAlreadyGone wraps a logout answered with "no such node": it was
// already logged out, collected or deleted.
var ErrAlreadyGone = errors.New("node already gone at the coordinator")

// unknownField reports whether err is the coordinator's refusal of a
// request field it does not know (its strict decoding: "400
// invalid_request", `json: unknown field "name"`): the coordinator is
// older than this client.
func unknownField(err error, name string) bool {
	var e *meshapi.Error
	return errors.As(err, &e) && e.Code == meshapi.ErrInvalidRequest &&
		strings.Contains(e.Message, `unknown field "`+name+`"`)
}

// AddrOrNone is a for a log line: "none" for the zero Addr (a node
// registered without IPv6), where slog would print "invalid IP".
func AddrOrNone(a netip.Addr) string {
	if !a.IsValid() {
		return "none"
	}
	return a.String()
}
