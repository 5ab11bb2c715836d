package testnet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestEchoLinesAnswersEachLine(t *testing.T) {
	port := Serve(t, "tcp", "127.0.0.1:0", EchoLines("b"))
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, line := range []string{"one", "two"} {
		if _, err := io.WriteString(c, line+"\n"); err != nil {
			t.Fatal(err)
		}
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if want := "b: " + line + "\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

func TestServeClosesTheConnectionWhenTheHandlerReturns(t *testing.T) {
	port := Serve(t, "tcp4", "127.0.0.1:0", func(c net.Conn) { io.WriteString(c, "bye\n") })
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye\n" {
		t.Fatalf("read %q, %v; want the handler's line then EOF", got, err)
	}
}

func TestClosedPortRefuses(t *testing.T) {
	port := ClosedPort(t)
	_, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial to the closed port: %v, want connection refused", err)
	}
}
