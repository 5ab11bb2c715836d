package main

import (
	"encoding/json"
	"fmt"

	"github.com/meshinit/meshinit/meshapi"
	"github.com/urfave/cli/v2"
)

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "print node lifecycle events (registered, online, offline, logged_out, renamed, deleted{reason})",
		Flags: withClientFlags(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events as they happen"},
			&cli.Uint64Flag{Name: "since", Usage: "only events after this sequence number"},
			jsonFlag(),
		),
		Action: events,
	}
}

func events(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("events takes no arguments, got %q", c.Args().Slice())}
	}
	cl, err := client(c)
	if err != nil {
		return err
	}
	asJSON := c.Bool("json")
	w := c.App.Writer
	if !asJSON {
		fmt.Fprintf(w, "%-23s  %6s  %-10s  %6s  %-24s  %s\n", "TIME", "SEQ", "TYPE", "NODE", "NAME", "REASON/DETAIL")
	}
	return cl.Events(c.Context, c.Uint64("since"), c.Bool("follow"), func(e meshapi.Event) error {
		if asJSON {
			b, err := json.Marshal(e) // one object per line, for tools
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "%s\n", b)
			return err
		}
		info := string(e.Reason)
		if e.Detail != "" {
			if info != "" {
				info += " "
			}
			info += e.Detail
		}
		_, err := fmt.Fprintf(w, "%-23s  %6d  %-10s  %6d  %-24s  %s\n",
			e.Time.Local().Format("2006-01-02 15:04:05.000"), e.Seq, e.Type, e.NodeID, e.Name, info)
		return err
	})
}
