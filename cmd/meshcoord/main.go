// Command meshcoord is the meshinit coordinator: "meshcoord serve" runs the
// control server on an embedded SQLite file, and the other commands are its
// admin CLI (keys, nodes, events), talking to a running server over its
// local admin socket or, with --server and MESHCOORD_ADMIN_TOKEN, over
// HTTP(S). See docs/coordinator.md and docs/protocol.md.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/urfave/cli/v2"
)

var version = "dev"

// Exit codes: 0 success, 1 the action failed (the message says why), 2 bad
// usage.
const (
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "meshcoord",
		Usage:   "the meshinit coordinator: control server and admin CLI",
		Version: version,
		Commands: []*cli.Command{
			serveCommand(),
			keysCommand(),
			nodesCommand(),
			eventsCommand(),
			policyCommand(),
		},
		HideHelpCommand: true,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageError{err}
		},
	}
}

type usageError struct{ error }

func run(args []string, stdout, stderr *os.File) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	app.ExitErrHandler = func(*cli.Context, error) {} // we print and exit ourselves
	err := app.Run(interspersed(app, args))
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "meshcoord: %v (see meshcoord --help)\n", ue.error)
		return exitUsage
	}
	var apiErr *meshapi.Error
	if errors.As(err, &apiErr) {
		fmt.Fprintf(stderr, "meshcoord: %s\n", apiErr.Message)
		return exitFailure
	}
	fmt.Fprintf(stderr, "meshcoord: %v\n", err)
	return exitFailure
}
