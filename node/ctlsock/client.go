package ctlsock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// maxAnswer bounds an answer read from the socket.
const maxAnswer = 4 << 20

// Client talks to a running meshinit over its control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	err := c.call(ctx, http.MethodGet, PathStatus, &s)
	return s, err
}

// Logout asks the node to leave the mesh now.
func (c *Client) Logout(ctx context.Context) (LogoutResult, error) {
	var r LogoutResult
	err := c.call(ctx, http.MethodPost, PathLogout, &r)
	return r, err
}

func (c *Client) call(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://meshinit"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ne *net.OpError
		if errors.As(err, &ne) {
			return fmt.Errorf("no meshinit answers on %s (is a meshinit with MESH_AUTHKEY running here? set MESH_CONTROL_SOCKET if it uses another path): %w", c.path, ne.Err)
		}
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("control socket %s: %w", c.path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error != "" {
			return errors.New(eb.Error)
		}
		return fmt.Errorf("control socket %s: %s: %s", c.path, resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control socket %s: bad answer: %w", c.path, err)
	}
	return nil
}
