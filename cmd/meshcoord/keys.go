package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/urfave/cli/v2"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "create, list and revoke auth keys",
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create an auth key and print it (shown only this once)",
				Description: `Prints the key alone on stdout (KEY=$(meshcoord keys create)) and a summary on
stderr; with --json prints the key and its details as one JSON object.`,
				Flags: withClientFlags(
					&cli.BoolFlag{Name: "ephemeral", Usage: "nodes it registers are deleted when they log out or stay offline"},
					&cli.BoolFlag{Name: "reusable", Usage: "may register any number of nodes, not just one"},
					&cli.StringSliceFlag{Name: "tag", Usage: "tag for the nodes it registers, tag:NAME (repeatable)"},
					&cli.StringFlag{Name: "expiry", Usage: "usable for this long (a duration such as 24h; default: forever)"},
					&cli.StringFlag{Name: "ephemeral-timeout", Usage: "offline time before its ephemeral nodes are deleted (default: the server's)"},
					&cli.StringFlag{Name: "description", Usage: "free text shown in keys list"},
					jsonFlag(),
				),
				Action: keysCreate,
			},
			{
				Name:   "list",
				Usage:  "list auth keys (never their secrets)",
				Flags:  withClientFlags(jsonFlag()),
				Action: keysList,
			},
			{
				Name:      "revoke",
				Usage:     "revoke an auth key (nodes it registered stay)",
				ArgsUsage: "ID",
				Flags:     withClientFlags(jsonFlag()),
				Action:    keysRevoke,
			},
		},
	}
}

func keysCreate(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("keys create takes no arguments, got %q", c.Args().Slice())}
	}
	expiry, err := durationFlag(c, "expiry")
	if err != nil {
		return err
	}
	timeout, err := durationFlag(c, "ephemeral-timeout")
	if err != nil {
		return err
	}
	req := meshapi.KeyCreateRequest{
		Ephemeral: c.Bool("ephemeral"), Reusable: c.Bool("reusable"), Tags: c.StringSlice("tag"),
		Expiry: meshapi.Duration(expiry), EphemeralTimeout: meshapi.Duration(timeout), Description: c.String("description"),
	}
	return adminCall(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.KeyCreateResponse, error) {
		return cl.CreateKey(ctx, req)
	}, func(k *meshapi.KeyCreateResponse) error {
		fmt.Fprintln(c.App.Writer, k.Key)
		var kind []string
		kind = append(kind, map[bool]string{true: "reusable", false: "one-off"}[k.Reusable])
		if k.Ephemeral {
			kind = append(kind, "ephemeral")
		}
		exp := "never expires"
		if !k.Expires.IsZero() {
			exp = "expires " + stamp(k.Expires)
		}
		fmt.Fprintf(c.App.ErrWriter, "created auth key %s (%s, %s); the key above is shown only this once\n",
			k.ID, strings.Join(kind, ", "), exp)
		return nil
	})
}

func keysList(c *cli.Context) error {
	return adminCall(c, (*adminclient.Client).Keys, func(keys []meshapi.AuthKey) error {
		now := time.Now()
		t := newTable(c.App.Writer, "ID", "STATE", "USES", "REUSABLE", "EPHEMERAL", "TIMEOUT", "EXPIRES", "TAGS", "DESCRIPTION")
		for _, k := range keys {
			timeout := ""
			if k.EphemeralTimeout != 0 {
				timeout = k.EphemeralTimeout.String()
			}
			t.row(k.ID, string(k.State), fmt.Sprint(k.Uses), yes(k.Reusable), yes(k.Ephemeral), timeout,
				until(k.Expires, now), strings.Join(k.Tags, ","), k.Description)
		}
		return t.flush()
	})
}

func keysRevoke(c *cli.Context) error {
	id, err := oneArg(c, "the key ID (see meshcoord keys list)")
	if err != nil {
		return err
	}
	return adminCall(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.AuthKey, error) {
		return cl.RevokeKey(ctx, id)
	}, func(k *meshapi.AuthKey) error {
		fmt.Fprintf(c.App.Writer, "revoked auth key %s\n", k.ID)
		return nil
	})
}
