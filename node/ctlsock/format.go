package ctlsock

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText prints s for humans, as "meshinit status" shows it. now is the
// time handshake ages are measured from.
func WriteText(w io.Writer, s Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "state:\t%s\n", s.State)
	if s.Name != "" {
		fmt.Fprintf(tw, "name:\t%s\n", s.FQDN)
	}
	var addrs []string
	for _, a := range []fmt.Stringer{s.IPv4, s.IPv6} {
		if str := a.String(); str != "invalid IP" {
			addrs = append(addrs, str)
		}
	}
	if len(addrs) > 0 {
		fmt.Fprintf(tw, "addresses:\t%s\n", strings.Join(addrs, ", "))
	}
	mode := s.Net
	if s.Proxy != "" {
		mode += ", proxy " + s.Proxy
	}
	if mode != "" {
		fmt.Fprintf(tw, "net:\t%s\n", mode)
	}
	c := s.Coordinator
	line := c.URL + " " + c.State
	if !c.Since.IsZero() {
		line += " since " + c.Since.Local().Format(time.TimeOnly)
	}
	line += fmt.Sprintf(" (map version %d, %d reconnects)", c.MapVersion, c.Reconnects)
	if c.LastError != "" {
		line += "; last error: " + c.LastError
	}
	fmt.Fprintf(tw, "coordinator:\t%s\n", line)
	if r := s.Relay; r != nil {
		line := r.State
		if r.Kind != "" {
			line += " (" + r.Kind + ")"
		}
		if !r.Since.IsZero() {
			line += " since " + r.Since.Local().Format(time.TimeOnly)
		}
		if r.LastError != "" {
			line += "; last error: " + r.LastError
		}
		fmt.Fprintf(tw, "relay:\t%s\n", line)
	}
	if s.Policy.Enforcing {
		var dropped uint64
		for _, n := range s.Policy.Drops {
			dropped += n
		}
		fmt.Fprintf(tw, "policy:\tversion %d, %d inbound rules, %d packets dropped\n", s.Policy.Version, s.Policy.Rules, dropped)
	} else {
		fmt.Fprintf(tw, "policy:\tnone (every peer may connect)\n")
	}
	fmt.Fprintf(tw, "peers:\t%d\n", len(s.Peers))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(s.Peers) == 0 {
		return nil
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tIPV4\tONLINE\tLAST HANDSHAKE\tPATH\tRX\tTX\tWHY")
	for _, p := range s.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = now.Sub(p.LastHandshake).Round(time.Second).String() + " ago"
		}
		online := "no"
		if p.Online {
			online = "yes"
		}
		path := p.Path
		if p.Endpoint != "" {
			path += " " + p.Endpoint
		}
		if path == "" {
			path = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Name, p.IPv4, online, hs, path, p.RxBytes, p.TxBytes, p.PathReason)
	}
	return tw.Flush()
}
