package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/internal/capool"
	"github.com/urfave/cli/v2"
)

// defaultSocket is where serve puts the admin socket and the CLI looks for
// it, unless told otherwise.
func defaultSocket() string {
	if os.Geteuid() == 0 {
		return "/run/meshcoord.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "meshcoord.sock")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("meshcoord-%d.sock", os.Getuid()))
}

func socketFlag() cli.Flag {
	return &cli.StringFlag{Name: "admin-socket", EnvVars: []string{"MESHCOORD_ADMIN_SOCKET"}, Value: defaultSocket(),
		Usage: "path of the admin socket (mode 0600)"}
}

func tokenFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "admin-token", EnvVars: []string{"MESHCOORD_ADMIN_TOKEN"}, Usage: usage}
}

// clientFlags choose how admin commands reach the server.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		socketFlag(),
		&cli.StringFlag{Name: "server", EnvVars: []string{"MESHCOORD_SERVER"},
			Usage: "talk to the server over HTTP(S) at this URL instead of the admin socket (needs the admin token)"},
		tokenFlag("admin token for --server (prefer the environment variable: flags show in ps)"),
		&cli.StringFlag{Name: "tls-ca", EnvVars: []string{"MESHCOORD_TLS_CA"},
			Usage: "PEM file of the CA (or self-signed certificate) to trust for an https --server"},
	}
}

func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON for machines instead of a table"}
}

func withClientFlags(fs ...cli.Flag) []cli.Flag { return append(fs, clientFlags()...) }

// client builds the admin client the flags ask for.
func client(c *cli.Context) (*adminclient.Client, error) {
	srv := c.String("server")
	if srv == "" {
		return adminclient.NewSocket(c.String("admin-socket")), nil
	}
	var tc *tls.Config
	if ca := c.String("tls-ca"); ca != "" {
		pool, err := capool.Load(ca)
		if err != nil {
			return nil, fmt.Errorf("--tls-ca: %w", err)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return adminclient.NewHTTP(srv, c.String("admin-token"), tc)
}

// parseDuration reads a Go duration ("90s", "2m") or a bare number of
// seconds ("5"), for flags and their environment variables.
func parseDuration(flag, s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		// !(n >= 0) also refuses NaN, which ParseFloat accepts ("nan").
		if !(n >= 0) || n > float64(1<<62)/float64(time.Second) {
			return 0, usageError{fmt.Errorf("--%s %q: out of range", flag, s)}
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usageError{fmt.Errorf("--%s %q: want a duration such as 90s or 10m, or a number of seconds", flag, s)}
	}
	return d, nil
}

func durationFlag(c *cli.Context, name string) (time.Duration, error) {
	return parseDuration(name, c.String(name))
}
