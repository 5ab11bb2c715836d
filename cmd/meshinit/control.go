package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/urfave/cli/v2"
)

// controlTimeout bounds "meshinit status".
const controlTimeout = 15 * time.Second

// logoutVerbMargin is what "meshinit logout" waits beyond the running
// meshinit's own limit (MESH_LOGOUT_TIMEOUT), for its answer to arrive.
const logoutVerbMargin = 2 * time.Second

// controlCommands are the verbs that talk to a running meshinit over its
// control socket (`meshinit status`, `meshinit logout`).
func controlCommands() []*cli.Command {
	socket := func() *cli.StringFlag {
		return &cli.StringFlag{
			Name: flagControlSocket, Value: ctlsock.DefaultSocket, EnvVars: []string{envName(flagControlSocket)},
			Usage: "control socket of the running meshinit",
		}
	}
	return []*cli.Command{
		{
			Name:      "status",
			Usage:     "show the running meshinit's mesh node: name, addresses, peers, coordinator link",
			UsageText: "meshinit status [--json] [--control-socket PATH]",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print the status as JSON"},
				socket(),
			},
			Action: func(c *cli.Context) error {
				ctx, cancel := context.WithTimeout(c.Context, controlTimeout)
				defer cancel()
				s, err := ctlsock.NewClient(c.String(flagControlSocket)).Status(ctx)
				if err != nil {
					return cli.Exit(fmt.Sprintf("status: %v", err), 1)
				}
				if c.Bool("json") {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(s)
				}
				return ctlsock.WriteText(os.Stdout, s, time.Now())
			},
		},
		{
			Name:      "logout",
			Usage:     "log the running meshinit's node out of the mesh now; the command keeps running without the mesh",
			UsageText: "meshinit logout [--control-socket PATH] [--logout-timeout D]",
			Flags: []cli.Flag{socket(), &cli.StringFlag{
				Name: flagLogoutTimeout, Value: "3s", EnvVars: []string{envName(flagLogoutTimeout)},
				Usage: "the running meshinit's MESH_LOGOUT_TIMEOUT: it gives the logout that long; this verb waits a little longer for its answer",
			}},
			Action: func(c *cli.Context) error {
				limit, err := positiveDuration(c, flagLogoutTimeout)
				if err != nil {
					return cli.Exit(fmt.Sprintf("logout: %v", err), 1)
				}
				ctx, cancel := context.WithTimeout(c.Context, limit+logoutVerbMargin)
				defer cancel()
				r, err := ctlsock.NewClient(c.String(flagControlSocket)).Logout(ctx)
				if err != nil {
					return cli.Exit(fmt.Sprintf("logout: %v", err), 1)
				}
				switch {
				case r.Already:
					fmt.Println("already logged out")
				case r.Deleted:
					fmt.Println("logged out: the node was deleted from the mesh")
				default:
					fmt.Println("logged out")
				}
				return nil
			},
		},
	}
}
