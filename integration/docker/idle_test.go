package docker_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
)

// idleMeshSize is issue 8.11's count: 150 meshed containers on one host.
const idleMeshSize = 150

// TestMeshIdleContainersKeepTheNeighbourTableSmall: 150 meshed containers
// under the private dockerd, default kernel settings. All join; an idle
// mesh sends nothing between peers (no keepalive, no handshake), so the
// host's neighbour table (shared by every network namespace) holds about
// one entry per container, far from the default limit
// (net.ipv4.neigh.default.gc_thresh3, 1024), where N×(N−1) handshakes
// would overflow it. Then half the containers are stopped and half killed:
// every node is deleted (logout or GC).
func TestMeshIdleContainersKeepTheNeighbourTableSmall(t *testing.T) {
	suite(t)
	const gcTimeout = 15 * time.Second
	m := newMesh(t, gcTimeout)
	limit := readInt(t, "/proc/sys/net/ipv4/neigh/default/gc_thresh3")

	names := make([]string, idleMeshSize)
	for i := range names {
		names[i] = container(t, fmt.Sprintf("idle-%03d", i))
	}
	runAll(t, names, func(name string) []string {
		return append(append([]string{"run", "-d", "--name", name, "--hostname", name}, dockerEnv(m)...), imageTestapp, "sleep")
	})
	m.WaitNodes(t, 5*time.Minute, names)
	// Every node has the full map (149 peers) now. Give handshakes, had
	// there been any, the time to fill the table: a few keepalive periods
	// of the old design would be 25 s each; the new design must stay
	// flat, so sample for a while and keep the largest value.
	peak := 0
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		peak = max(peak, neighbourEntries(t))
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("neighbour table: peak %d entries with %d idle meshed containers (limit %d)", peak, idleMeshSize, limit)
	if peak > limit/2 {
		t.Errorf("neighbour table reached %d entries with %d idle containers: want well under the limit %d", peak, idleMeshSize, limit)
	}

	var stop, kill []string
	for i, n := range names {
		if i%2 == 0 {
			stop = append(stop, n)
		} else {
			kill = append(kill, n)
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); dockerBatch(t, "stop", stop) }()
	go func() { defer wg.Done(); dockerBatch(t, "kill", kill) }()
	wg.Wait()
	m.WaitNodes(t, gcTimeout+3*time.Minute, nil)
}

// runAll runs "docker <args(name)>" for every name, a few at a time.
func runAll(t *testing.T, names []string, args func(string) []string) {
	t.Helper()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	errs := make(chan string, len(names))
	for _, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if code, out := dockerCode(t, args(n)...); code != 0 {
				errs <- fmt.Sprintf("%s: exit %d: %s", n, code, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if t.Failed() {
		t.FailNow()
	}
}

// dockerBatch runs "docker verb name..." in chunks of 30 names.
func dockerBatch(t *testing.T, verb string, names []string) {
	for len(names) > 0 {
		n := min(30, len(names))
		if code, out := dockerCode(t, append([]string{verb}, names[:n]...)...); code != 0 {
			t.Errorf("docker %s: exit %d: %s", verb, code, out)
		}
		names = names[n:]
	}
}

// neighbourEntries is the size of the host's IPv4 neighbour table, which
// all network namespaces share (the "entries" column of
// /proc/net/stat/arp_cache, in hex).
func neighbourEntries(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/stat/arp_cache")
	if err != nil {
		harness.Missing(t, "/proc/net/stat/arp_cache")
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		t.Fatalf("arp_cache: %q", b)
	}
	n, err := strconv.ParseInt(strings.Fields(lines[1])[0], 16, 64)
	if err != nil {
		t.Fatalf("arp_cache entries: %v", err)
	}
	return int(n)
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}
