package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/urfave/cli/v2"
)

// oneArg is the one positional argument of a verb such as "keys revoke ID";
// what says what it is, for the usage error.
func oneArg(c *cli.Context, what string) (string, error) {
	if c.Args().Len() != 1 {
		return "", usageError{fmt.Errorf("%s: want exactly one argument, %s", strings.TrimPrefix(c.Command.HelpName, "meshcoord "), what)}
	}
	return c.Args().First(), nil
}

// adminCall is the body every admin verb shares: one request with the
// client the flags describe, bounded by adminclient.Timeout, and its answer
// printed as JSON with --json, else by show for humans. call takes the
// client first so that methods serve as is: (*adminclient.Client).Nodes.
func adminCall[T any](c *cli.Context, call func(*adminclient.Client, context.Context) (T, error), show func(T) error) error {
	cl, err := client(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, adminclient.Timeout)
	defer cancel()
	v, err := call(cl, ctx)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, v)
	}
	return show(v)
}
