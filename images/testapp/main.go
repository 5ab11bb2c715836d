// Command testapp is the app the docker and containerd suites run under
// meshinit. It is static (CGO_ENABLED=0) so it runs in a FROM scratch image,
// and it reports what the suites check on its first line:
//
//	testapp start t=<unix ns> pid=… ppid=… pgid=… sid=… pid1=<exe of PID 1> mesh_name=… mesh_ipv4=… authkey_visible=<bool>
//
// Modes:
//
//	testapp info                 the start line, then exit 0
//	testapp exit CODE            exit with CODE
//	testapp sleep [-term …]
//	                             print "testapp ready" and block; every signal is
//	                             logged ("testapp got SIGUSR1"); -term says what SIGTERM
//	                             does: default (die of it), ignore, or exit:N
//	testapp fetch [-timeout D] URL
//	                             GET URL (through $HTTP_PROXY when set) until it
//	                             answers 200 or the timeout passes; print the body
//	testapp jobshell             a tiny job-control shell on the terminal (see jobshell.go)
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: testapp info|exit CODE|sleep|fetch URL|jobshell")
		os.Exit(2)
	}
	mode, args := os.Args[1], os.Args[2:]
	startLine()
	switch mode {
	case "info":
		os.Exit(0)
	case "exit":
		code := 0
		if len(args) > 0 {
			c, err := strconv.Atoi(args[0])
			if err != nil {
				fmt.Fprintf(os.Stderr, "testapp exit: bad code %q: %v\n", args[0], err)
				os.Exit(2)
			}
			code = c
		}
		os.Exit(code)
	case "sleep":
		os.Exit(sleep(args))
	case "fetch":
		os.Exit(fetch(args))
	case "jobshell":
		os.Exit(jobshell())
	default:
		fmt.Fprintf(os.Stderr, "testapp: unknown mode %q\n", mode)
		os.Exit(2)
	}
}
