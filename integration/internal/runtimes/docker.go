package runtimes

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Docker is a private dockerd (with its own containerd) and the CLI that
// drives it.
type Docker struct {
	// Dir holds the daemon's root, exec root, pidfile, socket and log.
	Dir string
	// Host is the daemon's address for DOCKER_HOST (unix://…/docker.sock).
	Host string
	// CLI is the docker client used: Debian's, the one matching the daemon
	// (a newer docker earlier on PATH would default to buildx and newer API
	// levels). MESHINIT_DOCKER_CLI overrides it.
	CLI string
	// APIVersion is the daemon's API version; the CLI is pinned to it.
	APIVersion string
	// Bridge is the gateway address of the default bridge: containers reach
	// the host there.
	Bridge string

	env []string
	d   *daemon
}

// BridgeGateway is the host's address on the private dockerd's default
// bridge (dockerd --bip in scripts/runtimes.sh).
const BridgeGateway = "198.18.0.1"

// StartDocker starts a private dockerd and waits until it answers.
func StartDocker() (*Docker, error) {
	cli, err := script("docker-cli")
	if err != nil {
		return nil, err
	}
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	out, err := script("dockerd-args", dir)
	if err != nil {
		_ = cleanup(dir)
		return nil, err
	}
	argv := strings.Split(strings.TrimSpace(out), "\n")
	dk := &Docker{
		Dir:    dir,
		Host:   "unix://" + filepath.Join(dir, "docker", "docker.sock"),
		CLI:    strings.TrimSpace(cli),
		Bridge: BridgeGateway,
	}
	cfg := filepath.Join(dir, "cli-config") // no user config, contexts or credential helpers
	if err := os.MkdirAll(cfg, 0o700); err != nil {
		_ = cleanup(dir)
		return nil, err
	}
	dk.env = append(cleanEnv(),
		"DOCKER_HOST="+dk.Host,
		"DOCKER_CONFIG="+cfg,
		"DOCKER_BUILDKIT=0", // the classic builder: FROM scratch needs no registry and no buildx
		"DOCKER_CLI_HINTS=false",
	)
	dk.d, err = startDaemon("dockerd", argv, filepath.Join(dir, "docker", "dockerd.log"))
	if err != nil {
		_ = cleanup(dir)
		return nil, err
	}
	err = dk.d.waitReady(60*time.Second, func() error {
		v, err := dk.Output(context.Background(), "version", "--format", "{{.Server.APIVersion}}")
		dk.APIVersion = strings.TrimSpace(v)
		return err
	})
	if err != nil {
		_ = dk.Stop()
		return nil, err
	}
	dk.env = append(dk.env, "DOCKER_API_VERSION="+dk.APIVersion)
	return dk, nil
}

// cleanEnv is our environment without the docker client variables a
// developer's shell may carry.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH",
			"DOCKER_API_VERSION", "DOCKER_BUILDKIT", "DOCKER_DEFAULT_PLATFORM":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Env is the environment for running the docker CLI against this daemon.
func (dk *Docker) Env() []string { return append([]string(nil), dk.env...) }

// Command is "docker args..." against this daemon.
func (dk *Docker) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, dk.CLI, args...)
	cmd.Env = dk.env
	return cmd
}

// Output runs "docker args..." and returns stdout; the error carries stderr.
func (dk *Docker) Output(ctx context.Context, args ...string) (string, error) {
	cmd := dk.Command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Build builds an image tagged tag from dockerfile (a path), with a context
// holding exactly files (name in the context -> path on the host). The
// classic builder with FROM scratch needs no registry.
func (dk *Docker) Build(ctx context.Context, tag, dockerfile string, files map[string]string, buildArgs ...string) error {
	dir, err := os.MkdirTemp("", "meshinit-ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := copyFile(dockerfile, filepath.Join(dir, "Dockerfile"), 0o644); err != nil {
		return err
	}
	for name, src := range files {
		if err := copyFile(src, filepath.Join(dir, name), 0o755); err != nil {
			return err
		}
	}
	args := []string{"build", "--quiet", "--tag", tag}
	for _, a := range buildArgs {
		args = append(args, "--build-arg", a)
	}
	_, err = dk.Output(ctx, append(args, dir)...)
	return err
}

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// Stop removes every container (so dockerd's shutdown does not wait for
// them), stops dockerd and its containerd, and removes everything of Dir.
func (dk *Docker) Stop() error {
	var errs []string
	if exited, _ := dk.d.exited(); !exited {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if ids, err := dk.Output(ctx, "ps", "-aq"); err == nil && strings.TrimSpace(ids) != "" {
			if _, err := dk.Output(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...); err != nil {
				errs = append(errs, err.Error())
			}
		}
		cancel()
	}
	if err := dk.d.stop(30 * time.Second); err != nil {
		errs = append(errs, err.Error())
	}
	if err := cleanup(dk.Dir); err != nil {
		errs = append(errs, err.Error())
	}
	if len(errs) > 0 {
		return fmt.Errorf("stopping dockerd: %s", strings.Join(errs, "; "))
	}
	return nil
}
