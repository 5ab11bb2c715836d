// Package containerd_test runs meshinit under a real, private containerd
// through the containerd v2 Go client, the way Kubernetes' runtime does:
// an image imported from an OCI archive written by the test, containers and
// tasks created with the env, signals through task.Kill. The client is
// linked here only: the meshinit binary never links containerd.
package containerd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/meshinit/meshinit/integration/internal/harness"
	"github.com/meshinit/meshinit/integration/internal/ociimage"
	"github.com/meshinit/meshinit/integration/internal/runtimes"
)

const (
	// namespace is the containerd namespace of every object the suite makes.
	namespace = "meshinit-test"
	// imageName is the image the suite imports: meshinit in front of testapp.
	imageName = "docker.io/library/meshinit-testapp:test"
	// snapshotter is the one Debian's containerd uses on overlayfs.
	snapshotter = "overlayfs"
)

var (
	setupOnce sync.Once
	setupErr  error
	daemon    *runtimes.Containerd
	client    *containerd.Client
	image     containerd.Image
	started   time.Time
)

func TestMain(m *testing.M) {
	code := m.Run()
	if client != nil {
		client.Close()
	}
	if daemon != nil {
		if err := daemon.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "containerd suite cleanup:", err)
			if code == 0 {
				code = 1
			}
		}
		fmt.Printf("containerd suite: private containerd up for %v\n", time.Since(started).Round(time.Millisecond))
	}
	harness.Cleanup()
	os.Exit(code)
}

// suite gates the test, starts the private containerd once, imports the
// image, and returns a context in the suite's namespace.
func suite(t *testing.T) context.Context {
	t.Helper()
	harness.Integration(t)
	setupOnce.Do(func() {
		started = time.Now()
		setupErr = errors.New("suite setup did not finish (see the first failing test)")
		setupErr = setup(t)
	})
	if setupErr != nil {
		t.Fatalf("private containerd: %v", setupErr)
	}
	return namespaces.WithNamespace(t.Context(), namespace)
}

func setup(t *testing.T) error {
	if err := runtimes.Install(); err != nil {
		return err
	}
	d, err := runtimes.StartContainerd()
	if err != nil {
		return err
	}
	daemon = d
	client, err = containerd.New(d.Address, containerd.WithDefaultNamespace(namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), namespace), 2*time.Minute)
	defer cancel()
	// New does not dial: Version is the readiness check.
	v, err := client.Version(ctx)
	if err != nil {
		return fmt.Errorf("containerd version: %w", err)
	}
	t.Logf("private containerd %s (%s)", v.Version, d.Address)

	t0 := time.Now()
	var archive bytes.Buffer
	err = ociimage.Write(&archive, ociimage.Image{
		Name: imageName,
		Files: map[string]string{
			"meshinit": harness.Binary(t, "meshinit"),
			"testapp":  harness.Program(t, "./images/testapp"),
		},
		Entrypoint: []string{"/meshinit", "--", "/testapp"},
		Cmd:        []string{"info"},
		Env:        []string{"PATH=/"},
	})
	if err != nil {
		return err
	}
	imgs, err := client.Import(ctx, &archive)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if len(imgs) != 1 || imgs[0].Name != imageName {
		return fmt.Errorf("import gave %d images (%v), want %s", len(imgs), imgs, imageName)
	}
	image = containerd.NewImage(client, imgs[0])
	if err := image.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	t.Logf("image %s written, imported and unpacked in %v", imageName, time.Since(t0).Round(time.Millisecond))
	return nil
}
