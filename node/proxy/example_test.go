package proxy_test

import (
	"log"
	"net"

	"github.com/meshinit/meshinit/node/proxy"
)

// A proxy on a loopback port whose connections are made by a plain dialer.
// The node gives it a dial function that sends mesh names and addresses
// into the tunnel instead.
func ExampleServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var d net.Dialer
	srv := &proxy.Server{Dial: d.DialContext}
	go srv.Serve(ln) // returns ErrServerClosed after Close
	defer srv.Close()
	// Apps now use socks5h://<ln.Addr()> or http://<ln.Addr()> as their proxy.
}
