package main

import (
	"context"
	"fmt"
	"os"

	"github.com/meshinit/meshinit/coordinator/adminclient"
	"github.com/meshinit/meshinit/meshapi"
	"github.com/meshinit/meshinit/policy"
	"github.com/urfave/cli/v2"
)

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "show, set, check or clear the access policy (docs/policy.md)",
		Subcommands: []*cli.Command{
			{
				Name:   "get",
				Usage:  "print the policy in force (its document on stdout, its version on stderr)",
				Flags:  withClientFlags(jsonFlag()),
				Action: policyGet,
			},
			{
				Name:      "set",
				Usage:     "put the policy in FILE in force (refused if it does not parse or its tests fail)",
				ArgsUsage: "FILE",
				Flags:     withClientFlags(jsonFlag()),
				Action:    policySet,
			},
			{
				Name:      "check",
				Usage:     "parse FILE and run its tests, changing nothing (works without a server)",
				ArgsUsage: "FILE",
				Action:    policyCheck,
			},
			{
				Name:   "clear",
				Usage:  "remove the policy: every node may reach every other again",
				Flags:  withClientFlags(jsonFlag()),
				Action: policyClear,
			},
		},
	}
}

func readPolicyFile(c *cli.Context) ([]byte, error) {
	path, err := oneArg(c, "the policy file")
	if err != nil {
		return nil, err
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the policy: %w", err)
	}
	return doc, nil
}

func showPolicy(c *cli.Context) func(*meshapi.PolicyResponse) error {
	return func(p *meshapi.PolicyResponse) error {
		if p.Source == "" {
			fmt.Fprintf(c.App.ErrWriter, "no policy (version %d): every node may reach every other\n", p.Version)
			return nil
		}
		fmt.Fprintf(c.App.ErrWriter, "policy version %d (%s), set %s\n", p.Version, p.Hash, p.Updated.Format("2006-01-02 15:04:05Z07:00"))
		_, err := fmt.Fprint(c.App.Writer, p.Source)
		return err
	}
}

func policyGet(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return usageError{fmt.Errorf("policy get takes no arguments, got %q", c.Args().Slice())}
	}
	return adminCall(c, (*adminclient.Client).Policy, showPolicy(c))
}

func policySet(c *cli.Context) error {
	doc, err := readPolicyFile(c)
	if err != nil {
		return err
	}
	return adminCall(c, func(cl *adminclient.Client, ctx context.Context) (*meshapi.PolicyResponse, error) {
		return cl.SetPolicy(ctx, doc)
	}, func(p *meshapi.PolicyResponse) error {
		fmt.Fprintf(c.App.ErrWriter, "policy version %d (%s) in force\n", p.Version, p.Hash)
		return nil
	})
}

func policyClear(c *cli.Context) error {
	return adminCall(c, (*adminclient.Client).ClearPolicy, showPolicy(c))
}

// policyCheck runs locally: a CI step can check a policy before any
// coordinator sees it.
func policyCheck(c *cli.Context) error {
	doc, err := readPolicyFile(c)
	if err != nil {
		return err
	}
	p, err := policy.Load(doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "ok: %d grants, %d tests passed (%s)\n", len(p.Grants), len(p.Tests), p.Hash())
	return nil
}
