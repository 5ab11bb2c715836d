package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/meshinit/meshinit/internal/capool"
	"github.com/meshinit/meshinit/node"
	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/node/hostport"
	"github.com/meshinit/meshinit/node/localfwd"
	"github.com/meshinit/meshinit/shim"
)

// maxAuthKeyFile bounds MESH_AUTHKEY_FILE: a key is a short line.
const maxAuthKeyFile = 4 << 10

// mesh is the node inside meshinit with its control socket and health
// listener, driven by the shim's hooks.
type mesh struct {
	o      *options
	node   *node.Node
	ctl    *ctlsock.Server
	health *ctlsock.Server
}

// newMesh builds the node whose hooks bring it up before the command
// starts (Prepare) and log it out before meshinit exits (BeforeExit). It
// runs only when o.meshEnabled(). Configuration errors (unreadable key
// file, bad MESH_FORWARD, ...) are reported here, before anything touches
// the network.
func newMesh(o *options) (*mesh, error) {
	key, err := authKey(o)
	if err != nil {
		return nil, err
	}
	hostname := o.hostname
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("MESH_HOSTNAME is not set and the hostname cannot be read: %w", err)
		}
	}
	if o.coordinator == "" {
		return nil, fmt.Errorf("MESH_COORDINATOR (--%s) is not set: give the coordinator's URL, e.g. http://meshcoord:8480", flagCoordinator)
	}
	var cas *x509.CertPool
	if o.coordinatorCA != "" {
		if cas, err = capool.Load(o.coordinatorCA); err != nil {
			return nil, fmt.Errorf("MESH_COORDINATOR_CA (--%s): %w", flagCoordinatorCA, err)
		}
	}
	mode, err := dataplane.ParseMode(o.netMode)
	if err != nil {
		return nil, fmt.Errorf("MESH_NET (--%s): %w", flagNet, err)
	}
	fwd, err := node.ParseForward(o.forward)
	if err != nil {
		return nil, fmt.Errorf("MESH_FORWARD (--%s): %w", flagForward, err)
	}
	connect, err := localfwd.Parse(o.connect)
	if err != nil {
		return nil, fmt.Errorf("MESH_CONNECT (--%s): %w", flagConnect, err)
	}
	waitFor, err := hostport.ParseList(o.waitFor)
	if err != nil {
		return nil, fmt.Errorf("MESH_WAIT_FOR (--%s): %w", flagWaitFor, err)
	}
	dns, err := parseOnOff(o.dns)
	if err != nil {
		return nil, fmt.Errorf("MESH_DNS (--%s) is %q: %w", flagDNS, o.dns, err)
	}
	proxyAddr := strings.TrimSpace(o.proxy)
	if strings.EqualFold(proxyAddr, "off") {
		proxyAddr = ""
	}
	n, err := node.New(node.Config{
		Coordinator:    o.coordinator,
		CoordinatorCAs: cas,
		AuthKey:        key,
		Hostname:       hostname,
		Mode:           mode,
		ProxyAddr:      proxyAddr,
		Forward:        fwd,
		Connect:        connect,
		WaitFor:        waitFor,
		DNS:            dns,
		Log:            o.log,
	})
	if err != nil {
		return nil, err
	}
	return &mesh{o: o, node: n}, nil
}

// hooks are the node's part in the shim's supervision.
func (m *mesh) hooks() shim.Hooks {
	return shim.Hooks{Prepare: m.prepare, BeforeExit: m.beforeExit}
}

// authKey reads the key from MESH_AUTHKEY or MESH_AUTHKEY_FILE (a Docker
// secret), never both.
func authKey(o *options) (string, error) {
	if o.authKey != "" && o.authKeyFile != "" {
		return "", errors.New("both MESH_AUTHKEY and MESH_AUTHKEY_FILE are set: set only one")
	}
	if o.authKey != "" {
		return strings.TrimSpace(o.authKey), nil
	}
	f, err := os.Open(o.authKeyFile)
	if err != nil {
		return "", fmt.Errorf("MESH_AUTHKEY_FILE: %w", err)
	}
	defer f.Close()
	// Read to the end (a single read may return less, from a pipe or FUSE),
	// and report a read error as such: a directory mounted where the key
	// file was expected fails here with EISDIR, not as "empty".
	buf, err := io.ReadAll(io.LimitReader(f, maxAuthKeyFile+1))
	defer clear(buf)
	if err != nil {
		return "", fmt.Errorf("MESH_AUTHKEY_FILE: %w: it should be a file holding the key", err)
	}
	if len(buf) > maxAuthKeyFile {
		return "", fmt.Errorf("MESH_AUTHKEY_FILE %s: larger than %d bytes; it should hold just the key", o.authKeyFile, maxAuthKeyFile)
	}
	key := strings.TrimSpace(string(buf))
	if key == "" {
		return "", fmt.Errorf("MESH_AUTHKEY_FILE %s is empty: it should hold the key printed by \"meshcoord keys create\"", o.authKeyFile)
	}
	return key, nil
}

// prepare brings the node up before the command starts and returns the
// command's mesh environment.
func (m *mesh) prepare(ctx context.Context) ([]string, error) {
	if limit, fromEnv := node.SetDefaultMemoryLimit(); !fromEnv {
		m.o.log.Debug("memory limit set", "GOMEMLIMIT", limit)
	}
	// The socket comes first so that "meshinit status" can watch the start.
	if m.o.controlSocket != "" {
		ctl, err := ctlsock.Listen(m.o.controlSocket, m.node, m.o.log, m.o.logoutTimeout)
		if err != nil {
			m.o.log.Warn("control socket unavailable: meshinit status and logout will not work", "err", err)
		} else {
			m.ctl = ctl
		}
	}
	if m.o.healthAddr != "" {
		h, err := ctlsock.ListenHealth(m.o.healthAddr, m.node)
		if err != nil {
			return nil, fmt.Errorf("MESH_HEALTH_ADDR: %w", err)
		}
		m.health = h
		if ap, err := netip.ParseAddrPort(h.Addr()); err == nil {
			m.node.AddOwnPort(ap.Port())
		}
	}
	if err := m.node.Start(ctx); err != nil {
		return nil, fmt.Errorf("mesh: %w", err)
	}
	return m.node.ChildEnv(), nil
}

// beforeExit logs the node out within ctx (the stop budget's reserve) and
// takes the tunnel down. A failed logout is returned, and so logged; it
// never delays the exit beyond ctx. The control socket and the health
// endpoint stay: the command may run on for a while after the logout (the
// stop budget's reserve point), and "meshinit status" and /healthz still
// answer until meshinit exits (closeListeners).
func (m *mesh) beforeExit(ctx context.Context) error {
	// Give up on the coordinator a little before the deadline, so that the
	// result is still logged and the cleanup below still runs in time.
	if dl, ok := ctx.Deadline(); ok {
		margin := min(200*time.Millisecond, time.Until(dl)/5)
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
		defer cancel()
	}
	_, err := m.node.Logout(ctx)
	m.closeNodeWithin(ctx)
	if err != nil {
		return fmt.Errorf("logout failed: %w", err)
	}
	return nil
}

// closeNodeWithin takes the node down, waiting for that no longer than
// ctx allows: meshinit exits at its deadline whatever a device does.
func (m *mesh) closeNodeWithin(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		m.node.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		m.o.log.Warn("taking the mesh node down took too long; exiting without waiting for it")
	}
}

// closeListeners closes the control socket (removing its file) and the
// health endpoint, once the shim is done.
func (m *mesh) closeListeners() {
	if m.ctl != nil {
		m.ctl.Close()
	}
	if m.health != nil {
		m.health.Close()
	}
}

// parseOnOff reads a switch that is on by default, such as MESH_DNS:
// on/off, also true/false, 1/0; empty means the default, on.
func parseOnOff(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "on", "true", "1":
		return true, nil
	case "off", "false", "0":
		return false, nil
	}
	return false, errors.New("use on or off")
}
