package main

// The access policy's cost on the data path: the userspace pair of the
// throughput part twice, alternated run by run, once without a policy and
// once with one in force on the receiving node B, whose filter then judges
// every inbound packet of the transfer against its rules (the first by the
// rules, every later one by its flow). B's rules are a few grants of the
// shape the docs show, one of which admits A's tag to the sink's port. The
// ratio policy / no policy is the filter's cost (target ≥ 0.95); B's CPU
// per GiB moved, with against without, says the same in CPU, which the
// machine's other load disturbs less than throughput.
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
	var ratios, cpuWithout, cpuWith []float64
	win := cpuload.Start()
	for run := range *dpRuns {
		var w, p dpTransfer
		var cw, cp float64
		var err error
		// Alternate which goes first, so neither always runs on a
		// warmer (or busier) machine.
		if run%2 == 0 {
			if w, cw, err = dpPolicyRun(self, false); err == nil {
				p, cp, err = dpPolicyRun(self, true)
			}
		} else {
			if p, cp, err = dpPolicyRun(self, true); err == nil {
				w, cw, err = dpPolicyRun(self, false)
			}
		}
		if err != nil {
			return fmt.Errorf("run %d: %w", run+1, err)
		}
		without, with = append(without, w), append(with, p)
		ratios = append(ratios, p.rate()/w.rate())
		cpuWithout, cpuWith = append(cpuWithout, cw), append(cpuWith, cp)
		fmt.Printf("  run %d: no policy %.0f MiB/s, policy %.0f MiB/s (ratio %.3f); node B CPU per GiB %.2f s, %.2f s\n",
			run+1, w.rate(), p.rate(), p.rate()/w.rate(), cw, cp)
	}
	fmt.Printf("\npolicy filter (userspace pair; B enforces %d inbound rules, the transfer matches the last)\n", len(dpPolicyRules))
	fmt.Printf("  %-34s %10s\n", "", "median")
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the mesh, no policy", median(dpRates(without)))
	fmt.Printf("  %-34s %7.0f MiB/s\n", "through the mesh, policy in force", median(dpRates(with)))
	fmt.Printf("  %-34s %10.3f   (per run: %s; target >= 0.95)\n", "ratio policy / no policy", median(ratios), dpFmtList(ratios, "%.3f"))
	fmt.Printf("  %-34s %7.2f s / %.2f s   (no policy / policy: ratio %.3f)\n", "node B CPU per GiB", median(cpuWithout), median(cpuWith), median(cpuWith)/median(cpuWithout))
	fmt.Printf("  %-34s %10.2f   (cores of the machine used by other processes meanwhile: noise)\n", "other CPU", win.Others())
	return nil
}

// dpPolicyRun moves one transfer from A to B's sink, with or without B's
// policy, and returns it with B's CPU seconds per GiB (the whole run's, warm
// up included, over the measured transfer).
func dpPolicyRun(self string, withPolicy bool) (t dpTransfer, cpuPerGiB float64, err error) {
	sink, sinkPort, err := dpStartSink(self, nil, "127.0.0.1:0")
	if err != nil {
		return t, 0, err
	}
	defer sink.stop()
	var envB []string
	if withPolicy {
		envB = append(envB, "DP_POLICY_PORT="+strconv.Itoa(sinkPort), "DP_PEER_TAGS=tag:ci")
	}
	a, b, err := dpStartNodePair(self, "node", nil, nil, "127.0.0.1", "127.0.0.1", true, sinkPort, envB...)
	if err != nil {
		return t, 0, err
	}
	defer a.stop()
	defer b.stop()
	target := fmt.Sprintf("100.64.0.2:%d", sinkPort)
	if _, err := dpRunSource(self, nil, target, a.proxy, 1<<20); err != nil {
		return t, 0, fmt.Errorf("warm-up through the mesh: %w", err)
	}
	if t, err = dpRunSource(self, nil, target, a.proxy, *dpSize); err != nil {
		return t, 0, err
	}
	if withPolicy {
		c, err := dpDialTarget(a.proxy, fmt.Sprintf("100.64.0.2:%d", dpDeniedPort))
		if err == nil {
			c.Close()
			return t, 0, fmt.Errorf("the policy is not enforced: port %d, which no rule admits, accepted a connection", dpDeniedPort)
		}
	}
	if _, err := a.stop(); err != nil {
		return t, 0, err
	}
	ub, err := b.stop()
	return t, ub.cpu.Seconds() / (float64(t.bytes) / (1 << 30)), err
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
