package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3" (the
// Makefile does this from git describe).
var version = "dev"

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print meshinit's version",
		Action: func(c *cli.Context) error {
			_, err := fmt.Fprintf(c.App.Writer, "meshinit %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
