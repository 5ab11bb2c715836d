package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// fetch GETs a URL until it answers 200: a peer's map entry and tunnel may
// come up a moment after this container's own mesh, so one failure proves
// nothing. The proxy comes from $HTTP_PROXY, which meshinit sets.
func fetch(args []string) int {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: testapp fetch [-timeout D] URL")
		return 2
	}
	url := fs.Arg(0)
	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyFromEnvironment},
		Timeout:   5 * time.Second,
	}
	deadline := time.Now().Add(*timeout)
	var lastErr error
	for attempt := 1; ; attempt++ {
		body, err := get(client, url)
		if err == nil {
			fmt.Printf("testapp fetched %s (attempt %d): %s", url, attempt, body)
			return 0
		}
		lastErr = err
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // a retry interval, not synchronisation
	}
	fmt.Fprintf(os.Stderr, "testapp fetch %s: %v (proxy %q)\n", url, lastErr, os.Getenv("HTTP_PROXY"))
	return 1
}

func get(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), nil
}
