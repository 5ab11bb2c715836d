package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/coordinator"
	"github.com/meshinit/meshinit/coordinator/coordinatortest"
	"github.com/meshinit/meshinit/internal/testcert"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/node/controlclient"
	"github.com/meshinit/meshinit/node/ctlsock"
)

// A coordinator served over HTTPS with a certificate from a private CA (as
// meshcoord serve --tls-cert/--tls-key does): a node told to trust that CA
// joins; a node left with the system's roots, or told to trust another CA,
// fails at once at the TLS handshake, saying what to set.
func TestCoordinatorWithAPrivateCA(t *testing.T) {
	c := coordinatortest.NewServer(t, coordinator.Config{})
	key := c.CreateKey(meshapi.KeyCreateRequest{Ephemeral: true, Reusable: true}).Key
	ca := testcert.NewCA(t, "mesh test CA")
	front := httptest.NewUnstartedServer(c.Relay.Handler(c.Coordinator.Handler()))
	front.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, net.ParseIP("127.0.0.1")).TLS(t)}}
	front.EnableHTTP2 = true
	front.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes below
	front.StartTLS()
	t.Cleanup(func() {
		front.CloseClientConnections()
		front.Close()
	})
	if !strings.HasPrefix(front.URL, "https://127.0.0.1:") {
		t.Fatalf("front URL %s", front.URL)
	}

	// Two nodes that trust the CA join, and reach each other: their map
	// streams and their relay connections (the first path between peers)
	// are all over HTTPS.
	var trusting [2]*Node
	for i, name := range []string{"trusting-a", "trusting-b"} {
		n, err := New(Config{Coordinator: front.URL, CoordinatorCAs: ca.Pool(), AuthKey: key, Hostname: name,
			ProxyAddr: "127.0.0.1:0", Forward: Forward{All: true}, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		loopbackOnly(n)
		t.Cleanup(func() { n.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = n.Start(ctx)
		cancel()
		if err != nil {
			t.Fatalf("a node trusting the coordinator's CA did not join: %v", err)
		}
		trusting[i] = n
	}
	for _, n := range trusting {
		eventually(t, "relay connected over HTTPS", func() (bool, string) {
			st := n.Status()
			return st.State == ctlsock.StateUp && st.Coordinator.State == "connected" && st.Relay != nil && st.Relay.State == "connected",
				fmt.Sprintf("state %s, coordinator %+v, relay %+v", st.State, st.Coordinator, st.Relay)
		})
	}
	port := echoServer(t, "trusting-b")
	if got, err := dialLine(trusting[0], "trusting-b:"+port); err != nil || got != "hello from trusting-b" {
		t.Errorf("dial between the trusting nodes: %q, %v", got, err)
	}

	other := testcert.NewCA(t, "another CA")
	for name, cas := range map[string]*x509.CertPool{"system roots": nil, "another CA": other.Pool()} {
		n, err := New(Config{Coordinator: front.URL, CoordinatorCAs: cas, AuthKey: key, Hostname: "doubting",
			Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		loopbackOnly(n)
		// The deadline is far: a certificate that is not trusted must fail
		// the first attempt, not be retried until it runs out.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = n.Start(ctx)
		expired := ctx.Err() != nil
		cancel()
		n.Close()
		var ce *controlclient.CertificateError
		if !errors.As(err, &ce) || expired || !strings.Contains(err.Error(), "MESH_COORDINATOR_CA") {
			t.Errorf("%s: Start = %v, want a certificate error at once that names MESH_COORDINATOR_CA", name, err)
		}
	}
	if n := len(c.Nodes()); n != 2 {
		t.Errorf("the coordinator has %d nodes, want only the two trusting ones", n)
	}
}

// A CA with a plain-HTTP coordinator is a mistake (the CA would protect
// nothing): New refuses it.
func TestCoordinatorCAWantsHTTPS(t *testing.T) {
	ca := testcert.NewCA(t, "mesh test CA")
	_, err := New(Config{Coordinator: "http://127.0.0.1:8480", CoordinatorCAs: ca.Pool(), AuthKey: "k", Hostname: "h"})
	if err == nil || !strings.Contains(err.Error(), "MESH_COORDINATOR_CA") || !strings.Contains(err.Error(), "https://") {
		t.Errorf("New with a CA and an http coordinator = %v, want an error saying to use https", err)
	}
}
