// Package netns opens sockets inside named network namespaces
// (/run/netns/NAME, as "ip netns add" makes them) from a test process that
// stays in its own: a socket stays in the namespace it was made in.
package netns

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Path is where "ip netns" keeps namespace name; a name that is already a
// path ("/proc/PID/ns/net", "/run/netns/x") is returned as it is.
func Path(name string) string {
	if strings.HasPrefix(name, "/") {
		return name
	}
	return "/run/netns/" + name
}

// Do runs open on an OS thread switched into namespace name and returns
// what it opened.
func Do[C io.Closer](name string, open func() (C, error)) (C, error) {
	type result struct {
		c   C
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread stays locked while it is in the other namespace; if
		// it cannot switch back, the runtime discards it when this
		// goroutine ends, so nothing else ever runs there.
		runtime.LockOSThread()
		var zero C
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{zero, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(Path(name))
		if err != nil {
			ch <- result{zero, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{zero, fmt.Errorf("setns %s: %w", name, err)}
			return
		}
		c, err := open()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// Listen listens inside namespace name.
func Listen(name, network, addr string) (net.Listener, error) {
	return Do(name, func() (net.Listener, error) { return net.Listen(network, addr) })
}

// Dial connects from inside namespace name.
func Dial(name, network, addr string, timeout time.Duration) (net.Conn, error) {
	return Do(name, func() (net.Conn, error) { return net.DialTimeout(network, addr, timeout) })
}

// HTTPClient makes its connections from inside namespace name.
func HTTPClient(name string, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return Dial(name, network, addr, 5*time.Second)
		},
	}}
}
