package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/relay"
	"github.com/meshinit/meshinit/coordinator/store"
	"github.com/meshinit/meshinit/internal/capool"
	"github.com/meshinit/meshinit/internal/stun"
)

// relayFlags are the serve flags of the relay and the STUN responder.
func relayFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "stun-listen", EnvVars: []string{"MESHCOORD_STUN_LISTEN"},
			Usage: "UDP address of a STUN responder (RFC 5389 binding), e.g. :3478; nodes learn their NAT's address from it (default off)"},
		&cli.StringFlag{Name: "replica-url", EnvVars: []string{"MESHCOORD_REPLICA_URL"},
			Usage: "this replica's URL as the other replicas on the same PostgreSQL database reach it, e.g. https://10.0.0.5:8480 (default: the --listen address, which must then be a specific one, not :8480 or 0.0.0.0)"},
		&cli.StringFlag{Name: "replica-ca", EnvVars: []string{"MESHCOORD_REPLICA_CA"},
			Usage: "PEM file of the certificate authorities the other replicas' https certificates chain to, for the relay's links between replicas (default: the system's roots)"},
	}
}

// replicaURL is the URL other replicas dial to reach this one: --replica-url,
// or the address the server listens on. A listener on every interface
// (":8480", "0.0.0.0", "[::]") names no address another machine can dial,
// so on PostgreSQL it needs --replica-url; a mistake here would only show
// later as relay links that never come up.
func replicaURL(c *cli.Context, scheme string, listen net.Addr) (string, error) {
	if u := c.String("replica-url"); u != "" {
		parsed, err := url.Parse(u)
		if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" {
			return "", fmt.Errorf("--replica-url %q (MESHCOORD_REPLICA_URL): want http(s)://HOST:PORT, the address other replicas dial", u)
		}
		return strings.TrimSuffix(u, "/"), nil
	}
	own := scheme + "://" + listen.String()
	if !store.IsPostgresURL(c.String("db")) {
		return own, nil
	}
	if ap, err := netip.ParseAddrPort(listen.String()); err == nil && ap.Addr().IsUnspecified() {
		return "", fmt.Errorf("--listen %s listens on every interface, so it names no address the other replicas can dial: "+
			"give this replica's own with --replica-url (MESHCOORD_REPLICA_URL), e.g. %s://10.0.0.5:%d", c.String("listen"), scheme, ap.Port())
	}
	return own, nil
}

// startRelay serves the relay at /v1/relay in front of the node API
// handler, and the STUN responder when --stun-listen is set. stop ends
// both.
func startRelay(c *cli.Context, coord *coordinator.Server, api http.Handler, log *slog.Logger) (h http.Handler, stop func(), err error) {
	var st *stun.Server
	port := 0
	if addr := c.String("stun-listen"); addr != "" {
		if st, err = stun.Listen(addr, log.With("component", "stun")); err != nil {
			return nil, nil, fmt.Errorf("--stun-listen %s: %w", addr, err)
		}
		port = st.Addr().Port
		go st.Serve()
		log.Info("STUN responder listening", "addr", st.Addr().String())
	}
	var mesh *relay.MeshConfig
	if path := c.String("replica-ca"); path != "" {
		pool, err := capool.Load(path)
		if err != nil {
			if st != nil {
				st.Close()
			}
			return nil, nil, fmt.Errorf("--replica-ca %s (MESHCOORD_REPLICA_CA): %w", path, err)
		}
		mesh = &relay.MeshConfig{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	rl, err := relay.ForCoordinator(coord, relay.Config{STUNPort: port, Log: log, Mesh: mesh})
	if err != nil {
		if st != nil {
			st.Close()
		}
		return nil, nil, err
	}
	return rl.Handler(api), func() {
		rl.Close()
		if st != nil {
			st.Close()
		}
	}, nil
}
