package main

// The access policy's cost on the data path: the userspace pair of the
// throughput part twice, alternated run by run, once without a policy and
// once with one in force on the receiving node B, whose filter then judges
// every inbound packet of the transfer against its rules (the first by the
// rules, every later one by its flow). B's rules are a few grants of the
// shape the docs show, one of which admits A's tag to the sink's port. The
// ratio policy / no policy is the filter's cost (target ≥ 0.95).
//
// Each policy run also checks that the policy is enforced: a connection
// from A to a port no rule admits must be refused.

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/meshinit/meshinit/internal/cpuload"
	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/policy"
)

// dpPolicyRules are B's inbound rules in the policy runs, as the
// coordinator would send them (src selectors, port specs); PORT is the
// sink's port, and A carries tag:ci.
var dpPolicyRules = [][2]string{
	{"tag:mon", "tcp:9100-9199"},
	{"tag:web", "tcp:80,443"},
	{"*", "icmp"},
	{"tag:ci", "tcp:PORT"},
}

// dpDeniedPort is a port no rule admits.
const dpDeniedPort = 9

func dpBenchPolicy(self string) error {
	var without, with []dpTransfer
	var ratios []float64
	win := cpuload.Start()
	for run := range *dpRuns {
		var w, p dpTransfer
		var err error
		// Alternate which goes first, so neither always runs on a
		// warmer (or busier) machine.
		if run%2 == 0 {
			if w, err = dpPolicyRun(self, false); err == nil {
				p, err = dpPolicyRun(self, true)
			}
		} else {
			if p, err = dpPolicyRun(self, true); err == nil {
				w, err = dpPolicyRun(self, false)
			}
		}
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		without, with = append(without, w), append(with, p)
		ratios = append(ratios, p.rate()/w.rate())
		fmt.Printf("  run %d: no policy %.0f MiB/s, policy %.0f MiB/s (ratio %.3f)\n", run+1, w.rate(), p.rate(), p.rate()/w.rate())
	}
	fmt.Printf("\npolicy filter (userspace pair; B enforces %d inbound rules, the transfer matches the last)\n", len(dpPolicyRules))
	fmt.Printf("  %-34s %10s\n", "", "median")
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the mesh, no policy", median(dpRates(without)))
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the mesh, policy in force", median(dpRates(with)))
	fmt.Printf("  %-34s %10.3f   (per run: %s; target >= 0.95)\n", "ratio policy / no policy", median(ratios), dpFmtList(ratios, "%.3f"))
	fmt.Printf("  %-34s %10.2f   (cores of the machine used by other processes meanwhile: noise)\n", "other CPU", win.Others())
	return nil
}

// dpPolicyRun moves one transfer from A to B's sink, with or without B's
// policy, and returns it.
func dpPolicyRun(self string, withPolicy bool) (dpTransfer, error) {
	sink, sinkPort, err := dpStartSink(self, nil, "127.0.0.1:0")
	if err != nil {
		return dpTransfer{}, err
	}
	defer sink.stop()
	var envB []string
	if withPolicy {
		envB = append(envB, "DP_POLICY_PORT="+strconv.Itoa(sinkPort), "DP_PEER_TAGS=tag:ci")
	}
	a, b, err := dpStartNodePair(self, "node", nil, nil, "127.0.0.1", "127.0.0.1", true, sinkPort, envB...)
	if err != nil {
		return dpTransfer{}, err
	}
	defer a.stop()
	defer b.stop()
	target := fmt.Sprintf("100.64.0.2:%d", sinkPort)
	if _, err := dpRunSource(self, nil, target, a.proxy, 1<<20); err != nil {
		return dpTransfer{}, fmt.Errorf("warm-up through the mesh: %w", err)
	}
	t, err := dpRunSource(self, nil, target, a.proxy, *dpSize)
	if err != nil {
		return t, err
	}
	if withPolicy {
		c, err := dpDialTarget(a.proxy, fmt.Sprintf("100.64.0.2:%d", dpDeniedPort))
		if err == nil {
			c.Close()
			return t, fmt.Errorf("the policy is not enforced: port %d, which no rule admits, accepted a connection", dpDeniedPort)
		}
	}
	if _, err := a.stop(); err != nil {
		return t, err
	}
	_, err = b.stop()
	return t, err
}

// dpNodePolicy puts the policy of DP_POLICY_PORT in force on dev, if set.
func dpNodePolicy(dev *dataplane.Device) error {
	port := os.Getenv("DP_POLICY_PORT")
	if port == "" {
		return nil
	}
	var rules []policy.Rule
	for _, r := range dpPolicyRules {
		rule, err := policy.ParseRule([]string{r[0]}, []string{strings.ReplaceAll(r[1], "PORT", port)})
		if err != nil {
			return err
		}
		rules = append(rules, rule)
	}
	dev.SetPolicy("bench", rules)
	if !dev.FilterStats().Enforcing {
		return fmt.Errorf("the policy did not take: %+v", dev.FilterStats())
	}
	return nil
}

// dpPeerTags are the tags the node gives every peer (DP_PEER_TAGS).
func dpPeerTags() []string {
	if v := os.Getenv("DP_PEER_TAGS"); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}
