package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/meshinit/meshinit/node/proxy"
)

// proxyServer is the local proxy as the node drives it.
type proxyServer interface {
	Addr() net.Addr
	Close() error
}

// runningProxy is a proxy.Server with its listener.
type runningProxy struct {
	srv *proxy.Server
	ln  net.Listener
}

func (p *runningProxy) Addr() net.Addr { return p.ln.Addr() }
func (p *runningProxy) Close() error   { return p.srv.Close() }

// startProxy listens on addr and serves the SOCKS5+HTTP proxy with dial.
// Connections fromMesh reports are refused.
func startProxy(addr string, dial proxy.DialFunc, fromMesh func(netip.AddrPort) bool, log *slog.Logger) (proxyServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy on %s: %w (set MESH_PROXY to a free address, or off)", addr, err)
	}
	srv := &proxy.Server{Dial: dial, FromMesh: fromMesh, Log: log.With("component", "proxy")}
	go srv.Serve(ln)
	return &runningProxy{srv: srv, ln: ln}, nil
}

// AddOwnPort adds the TCP port of one of meshinit's own listeners (the
// health port) to Config.OwnPorts: no peer may reach it. Call it before
// Start.
func (n *Node) AddOwnPort(port uint16) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cfg.OwnPorts = append(n.cfg.OwnPorts, port)
}
