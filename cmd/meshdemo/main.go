// Command meshdemo is the tiny app that "make demo" and the mesh
// integration tests run under meshinit: an HTTP server, and an HTTP client
// that reaches other nodes by their mesh names through the proxy meshinit
// gives it (HTTP_PROXY, or ALL_PROXY with socks5h).
//
//	meshdemo serve [-listen 127.0.0.1:8080] [-message TEXT]
//	meshdemo get [-via http|socks] [-timeout 10s] [-wait] URL
//	meshdemo env
//	meshdemo touch FILE
//	meshdemo hang [-ignore-term]
//
// serve answers every request with one line naming this node (MESH_NAME)
// and runs until SIGTERM or SIGINT. get fetches URL, retrying until it
// works or -timeout passes, prints the body and exits 0 (1 on failure);
// with -wait it then waits for SIGTERM/SIGINT instead of exiting. env prints
// the mesh-related environment, one VAR=value per line, sorted. touch
// creates FILE (proof that the command ran). hang waits for SIGTERM or
// SIGINT; with -ignore-term it ignores SIGTERM and waits to be killed (a
// slow app that does not stop). serve -exit N exits with N after a stop
// signal, so tests can tell the command's code from meshinit's.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "env":
		printEnv()
	case "touch":
		if len(os.Args) != 3 {
			usage()
		}
		err = os.WriteFile(os.Args[2], []byte("ran\n"), 0o644)
	case "hang":
		err = hang(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "meshdemo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: meshdemo serve [-listen ADDR] [-message TEXT] [-exit N] | get [-via http|socks] [-timeout D] [-wait] URL | env | touch FILE | hang [-ignore-term]")
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address to serve HTTP on")
	message := fs.String("message", "hello", "text to answer with")
	exitCode := fs.Int("exit", 0, "exit code after a stop signal")
	fs.Parse(args)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	me := os.Getenv("MESH_NAME")
	stop := notifyStop() // before "serving on": a test signals as soon as it reads that
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "%s from %s (you are %s)\n", *message, me, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	fmt.Printf("serving on %s as %s\n", ln.Addr(), me)
	go srv.Serve(ln)
	<-stop
	fmt.Println("stop signal: shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return err
	}
	os.Exit(*exitCode)
	return nil
}

func hang(args []string) error {
	fs := flag.NewFlagSet("hang", flag.ExitOnError)
	ignoreTerm := fs.Bool("ignore-term", false, "ignore SIGTERM (wait to be killed)")
	fs.Parse(args)
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("hanging, ignoring SIGTERM")
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGINT)
		<-ch
		return nil
	}
	stop := notifyStop()
	fmt.Println("hanging until SIGTERM")
	<-stop
	return nil
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	via := fs.String("via", "http", "proxy to use: http (HTTP_PROXY), socks (ALL_PROXY) or none (direct, as in MESH_NET=tun)")
	timeout := fs.Duration("timeout", 10*time.Second, "keep retrying this long")
	wait := fs.Bool("wait", false, "after the request, wait for SIGTERM instead of exiting")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	target := fs.Arg(0)
	tr := &http.Transport{DisableKeepAlives: true}
	through := "no proxy"
	if *via != "none" {
		proxyVar := map[string]string{"http": "HTTP_PROXY", "socks": "ALL_PROXY"}[*via]
		if proxyVar == "" {
			return fmt.Errorf("-via %q: want http, socks or none", *via)
		}
		pu, err := url.Parse(os.Getenv(proxyVar))
		if err != nil || pu.Host == "" {
			return fmt.Errorf("%s=%q: no proxy to reach the mesh through (is this running under meshinit with MESH_PROXY on?)", proxyVar, os.Getenv(proxyVar))
		}
		tr.Proxy = http.ProxyURL(pu)
		through = pu.Redacted()
	}
	var stop <-chan os.Signal
	if *wait {
		stop = notifyStop()
	}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	deadline := time.Now().Add(*timeout)
	delay := 20 * time.Millisecond
	for {
		body, err := fetch(client, target)
		if err == nil {
			fmt.Print(body)
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("GET %s through %s: %w", target, through, err)
		}
		time.Sleep(delay) // retrying a remote service, not synchronising a test
		delay = min(delay*2, 500*time.Millisecond)
	}
	if *wait {
		<-stop
	}
	return nil
}

func fetch(c *http.Client, target string) (string, error) {
	resp, err := c.Get(target)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(resp.Status + ": " + strings.TrimSpace(string(b)))
	}
	return string(b), nil
}

func printEnv() {
	var lines []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "MESH_") || strings.HasSuffix(strings.ToUpper(k), "_PROXY") {
			lines = append(lines, kv)
		}
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}
}

// notifyStop catches SIGTERM and SIGINT from now on; the channel receives
// the first. Call it before printing the line that tells a waiting test or
// script the command is ready, or a signal sent right after that line can
// still find the default action and kill the command.
func notifyStop() <-chan os.Signal {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	return ch
}
