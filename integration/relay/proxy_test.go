package relay_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/netns"
	"github.com/meshinit/meshinit/internal/syncbuf"
)

// startTinyproxy runs Debian's tinyproxy in namespace ns on addr:8888,
// allowing CONNECT to connectPort, and returns its URL.
func startTinyproxy(t *testing.T, ns, addr, connectPort string) string {
	t.Helper()
	bin := harness.LookPath(t, "tinyproxy")
	dir := t.TempDir()
	conf := filepath.Join(dir, "tinyproxy.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`User root
Group root
Port 8888
Listen %s
Timeout 600
MaxClients 50
LogLevel Info
LogFile "%s"
PidFile "%s"
Allow 198.18.0.0/15
ConnectPort %s
DisableViaHeader Yes
`, addr, filepath.Join(dir, "log"), filepath.Join(dir, "pid"), connectPort)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncbuf.Buffer{}
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("tinyproxy:\n%s%s", logs, b)
		}
	})
	harness.Eventually(t, 20*time.Second, "tinyproxy listening", func() (bool, string) {
		c, err := netns.Dial(ns, "tcp", net.JoinHostPort(addr, "8888"), time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
	return "http://" + net.JoinHostPort(addr, "8888")
}
