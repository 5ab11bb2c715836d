package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/urfave/cli/v2"
)

func nodesCommand() *cli.Command {
	action := func(name, usage string, do func(cl *adminclient.Client, ctx context.Context, ref string) (*meshapi.NodeActionResponse, error), verb string) *cli.Command {
		return &cli.Command{
			Name: name, Usage: usage, ArgsUsage: "ID|NAME", Flags: withClientFlags(jsonFlag()),
			Action: func(c *cli.Context) error {
				ref, err := oneArg(c, "the node's ID or NAME")
				if err != nil {
					return err
				}
				return nodeAction(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.NodeActionResponse, error) {
					return do(cl, ctx, ref)
				}, verb)
			},
		}
	}
	return &cli.Command{
		Name:  "nodes",
		Usage: "list, show, delete, expire and rename nodes",
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "list nodes", Flags: withClientFlags(jsonFlag()), Action: nodesList},
			{Name: "show", Usage: "show one node", ArgsUsage: "ID|NAME", Flags: withClientFlags(jsonFlag()), Action: nodesShow},
			action("delete", "delete a node now (reason admin); its name and addresses are free at once",
				(*adminclient.Client).DeleteNode, "deleted"),
			action("expire", "end a node's session: ephemeral nodes are deleted (reason admin), others logged out",
				(*adminclient.Client).ExpireNode, "expired"),
			{
				Name: "rename", Usage: "give a node a new name (a DNS label)", ArgsUsage: "ID|NAME NEW",
				Flags: withClientFlags(jsonFlag()),
				Action: func(c *cli.Context) error {
					if c.Args().Len() != 2 {
						return usageError{fmt.Errorf("nodes rename: want two arguments, ID|NAME and NEW")}
					}
					ref, name := c.Args().Get(0), c.Args().Get(1)
					return nodeAction(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.NodeActionResponse, error) {
						return cl.RenameNode(ctx, ref, name)
					}, "renamed")
				},
			},
		},
	}
}

func nodesList(c *cli.Context) error {
	return adminCall(c, (*adminclient.Client).Nodes, func(nodes []meshapi.Node) error {
		now := time.Now()
		t := newTable(c.App.Writer, "ID", "NAME", "IPV4", "IPV6", "STATE", "LAST SEEN", "EPHEMERAL", "GC", "KEY", "TAGS")
		for _, n := range nodes {
			t.row(fmt.Sprint(n.ID), n.Name, n.IPv4.String(), addrOrDash(n.IPv6), nodeState(&n), ago(n.LastSeen, now),
				yes(n.Ephemeral), until(n.GCDeadline, now), n.KeyID, strings.Join(n.Tags, ","))
		}
		return t.flush()
	})
}

// addrOrDash is a for a table: "-" for none (a node registered without
// IPv6), not netip's "invalid IP".
func addrOrDash(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

func nodeState(n *meshapi.Node) string {
	switch {
	case n.LoggedOut:
		return "logged out"
	case n.Online:
		return "online"
	case n.LastSeen.IsZero():
		return "registered"
	}
	return "offline"
}

func nodesShow(c *cli.Context) error {
	ref, err := oneArg(c, "the node's ID or NAME")
	if err != nil {
		return err
	}
	return adminCall(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.Node, error) {
		return cl.Node(ctx, ref)
	}, func(n *meshapi.Node) error {
		now := time.Now()
		eps := make([]string, len(n.Endpoints))
		for i, e := range n.Endpoints {
			eps[i] = e.String()
		}
		t := newTable(c.App.Writer, "FIELD", "VALUE")
		for _, kv := range [][2]string{
			{"id", fmt.Sprint(n.ID)}, {"name", n.Name}, {"fqdn", n.FQDN}, {"hostname", n.Hostname},
			{"ipv4", n.IPv4.String()}, {"ipv6", addrOrDash(n.IPv6)}, {"state", nodeState(n)},
			{"last seen", stamp(n.LastSeen) + " (" + ago(n.LastSeen, now) + ")"},
			{"ephemeral", yes(n.Ephemeral)}, {"gc deadline", stamp(n.GCDeadline)},
			{"created", stamp(n.Created)}, {"key", n.KeyID}, {"tags", strings.Join(n.Tags, ",")},
			{"public key", n.PublicKey.String()}, {"endpoints", strings.Join(eps, " ")},
		} {
			t.row(kv[0], kv[1])
		}
		return t.flush()
	})
}

func nodeAction(c *cli.Context, do func(*adminclient.Client, context.Context) (*meshapi.NodeActionResponse, error), verb string) error {
	return adminCall(c, do, func(r *meshapi.NodeActionResponse) error {
		what := verb
		switch {
		case verb == "expired" && r.Deleted:
			what = "expired (ephemeral: deleted)"
		case verb == "expired":
			what = "expired (logged out)"
		case verb == "renamed":
			what = "renamed to " + r.Node.Name
		}
		fmt.Fprintf(c.App.Writer, "node %d (%s) %s\n", r.Node.ID, r.Node.Name, what)
		return nil
	})
}
