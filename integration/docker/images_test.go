package docker_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/meshapi"
)

// The images themselves: what "make image" builds from the Dockerfiles.

func TestImageMeshinitIsTheBinaryOnly(t *testing.T) {
	suite(t)
	t.Parallel()
	var img []struct {
		Config struct {
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
		}
		RootFS struct{ Layers []string }
	}
	if err := json.Unmarshal([]byte(docker(t, "image", "inspect", imageMeshinit)), &img); err != nil || len(img) != 1 {
		t.Fatalf("image inspect %s: %v", imageMeshinit, err)
	}
	c := img[0].Config
	if strings.Join(c.Entrypoint, " ") != "/meshinit --" {
		t.Errorf("entrypoint %q, want [/meshinit --]", c.Entrypoint)
	}
	for _, label := range []string{"org.opencontainers.image.title", "org.opencontainers.image.version",
		"org.opencontainers.image.revision", "org.opencontainers.image.source", "org.opencontainers.image.description"} {
		if c.Labels[label] == "" {
			t.Errorf("label %s missing (labels: %v)", label, c.Labels)
		}
	}
	if n := len(img[0].RootFS.Layers); n != 1 {
		t.Errorf("%d layers, want 1 (FROM scratch, one COPY)", n)
	}
	// The image alone has no command to run after its "--": meshinit must
	// say so and fail, not exit 0 as if an app had run.
	code, out := dockerCode(t, "run", "--rm", imageMeshinit)
	if code == 0 {
		t.Errorf("meshinit image without a command exited 0, want a usage error; output:\n%s", out)
	}
}

// TestImageMeshcoordServesNodes runs the coordinator image on the private
// bridge, administers it with docker exec, and joins a meshinit container
// to it.
func TestImageMeshcoordServesNodes(t *testing.T) {
	suite(t)
	t.Parallel()
	coord := container(t, "image-coord")
	docker(t, "run", "-d", "--name", coord, imageCoord)
	ip, err := netip.ParseAddr(inspect(t, coord, "{{.NetworkSettings.IPAddress}}"))
	if err != nil || !netip.MustParsePrefix("198.18.0.0/15").Contains(ip) {
		t.Fatalf("coordinator container address %v (%v): want one in 198.18.0.0/15", ip, err)
	}
	waitLog(t, coord, "listening", 30*time.Second)
	var key meshapi.KeyCreateResponse
	out := docker(t, "exec", coord, "/meshcoord", "keys", "create", "--ephemeral", "--reusable", "--json")
	if err := json.Unmarshal([]byte(out), &key); err != nil || key.Key == "" {
		t.Fatalf("keys create --json in the container printed %q: %v", out, err)
	}
	nodes := func() []meshapi.Node {
		var nodes []meshapi.Node
		out := docker(t, "exec", coord, "/meshcoord", "nodes", "list", "--json")
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			t.Fatalf("nodes list --json printed %q: %v", out, err)
		}
		return nodes
	}

	node := container(t, "image-node")
	docker(t, "run", "-d", "--name", node, "--hostname", node, "-e", "MESH_AUTHKEY="+key.Key,
		"-e", fmt.Sprintf("MESH_COORDINATOR=http://%s", netip.AddrPortFrom(ip, 8480)), imageTestapp, "sleep")
	harness.Eventually(t, 60*time.Second, "node online in the containerised coordinator", func() (bool, string) {
		ns := nodes()
		return len(ns) == 1 && ns[0].Name == node && ns[0].Online, fmt.Sprintf("nodes: %+v", ns)
	})
	docker(t, "stop", node)
	if ns := nodes(); len(ns) != 0 {
		t.Errorf("after docker stop the coordinator still lists %+v", ns)
	}
}
