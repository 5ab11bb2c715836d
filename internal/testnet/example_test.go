package testnet_test

import (
	"bufio"
	"fmt"
	"net"

	"github.com/meshinit/meshinit/internal/testnet"
)

// A line echo behind a listener of one's own; in a test, Serve makes the
// listener on a free loopback port and closes it when the test ends.
func ExampleServeListener() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go testnet.ServeListener(ln, testnet.EchoLines("web"))

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	reply, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(reply)
	// Output: web: hello
}
