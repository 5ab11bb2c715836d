package dataplane_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// A TUN device whose setup fails returns at once with the step named and
// leaves no interface behind, also with a relay configured (whose
// connection never started: closing it used to wait for it for ever). The
// failure here: IPv6 is disabled in the namespace and the node has only an
// IPv6 address, so the interface would carry nothing.
func TestTUNSetupFailureIsPromptAndLeavesNoInterface(t *testing.T) {
	ipCmd := needTUN(t)
	ns, _ := makeNamespacePair(t, ipCmd, "198.18.5.1", "198.18.5.2")
	for _, key := range []string{"all", "default"} {
		run(t, ipCmd, "netns", "exec", ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/"+key+"/disable_ipv6")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ipCmd, "netns", "exec", ns, self)
	cmd.Env = append(os.Environ(), helperEnv+"=1", "DP_ADDRS=fd7a:6d65:7368::1", "DP_NAME=a",
		"DP_RELAY=http://198.18.5.2:1") // never dialled: the device never comes up
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader("")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the failing device setup still had not returned after 30s\nstderr:\n%s", &stderr)
	}
	if err == nil || strings.Contains(stdout.String(), "UP ") {
		t.Fatalf("the device came up with nothing to carry: %v\n%s", err, &stdout)
	}
	msg := stderr.String()
	for _, want := range []string{"TUN interface mesh0", "IPv6 is disabled here", "disable_ipv6=1", "no IPv4 address"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
	if out, err := exec.Command(ipCmd, "-n", ns, "link", "show", "mesh0").CombinedOutput(); err == nil {
		t.Errorf("mesh0 left behind after the failed setup:\n%s", out)
	}
}
