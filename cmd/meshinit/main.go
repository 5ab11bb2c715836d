// Command meshinit is a container init: it runs one command as PID 1 (or as
// a child subreaper), forwards signals to it, reaps zombies and exits with
// the command's status. With an auth key it also brings an in-memory mesh
// node up before the command starts and logs it out before exiting.
//
//	meshinit [flags] -- COMMAND [ARGS...]
//	meshinit version
//
// Every flag also reads its MESH_* environment variable; see --help.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/meshinit/meshinit/cmd/meshinit/internal/procsecret"
	"github.com/meshinit/meshinit/shim"
	// For `meshinit -- COMMAND`, install the signal handlers while the
	// other packages initialise (about 1 ms of start-up, see the package).
	_ "github.com/meshinit/meshinit/shim/earlysignals"
	"github.com/urfave/cli/v2"
)

func main() {
	os.Exit(run(os.Args))
}

const description = `meshinit runs COMMAND as a container init, as tini or dumb-init do: it forwards every
catchable signal to it (except SIGCHLD), reaps zombies, keeps stdin/stdout/stderr, the
terminal and the working directory, and exits with COMMAND's status.

With MESH_AUTHKEY (or MESH_AUTHKEY_FILE) it first joins the mesh (bounded by
MESH_WAIT_TIMEOUT) and logs the node out before it exits. Without a key it is a plain init.
COMMAND never sees MESH_AUTHKEY.

Stopping: every signal is forwarded, and meshinit waits for COMMAND however long it
takes, as tini does. With a key, the first MESH_STOP_SIGNAL starts a budget of
MESH_STOP_TIMEOUT (set it to your runtime's stop timeout): the logout runs when COMMAND
exits, or at the latest when only MESH_LOGOUT_TIMEOUT is left. Only with MESH_STOP_KILL=1
is COMMAND's process group killed at the end of the budget.

Exit status: COMMAND's code; 128+N if it died of signal N; 127 command not found;
126 not executable; 125 meshinit itself failed before COMMAND started.

Put "--" before COMMAND so that its name and flags are never read as meshinit's.`

// run is main without os.Exit, so the exit code is a plain return value.
func run(argv []string) int {
	if len(argv) >= 2 && argv[1] == "--" {
		return runFromEnv(argv[2:])
	}
	meshArgs, command, hasCommand := splitCommand(argv)
	code := 0
	app := &cli.App{
		Name:                 "meshinit",
		Usage:                "a container init that also puts the container on the mesh",
		UsageText:            "meshinit [flags] -- COMMAND [ARGS...]\nmeshinit version\nmeshinit --help",
		Description:          description,
		Version:              version,
		HideVersion:          true, // `meshinit version` is the one way
		HideHelpCommand:      true, // keep "help" free to be a COMMAND
		Flags:                flags(),
		Commands:             append([]*cli.Command{versionCommand()}, controlCommands()...),
		Writer:               os.Stdout,
		ErrWriter:            os.Stderr,
		ExitErrHandler:       func(*cli.Context, error) {}, // run decides the exit code
		OnUsageError:         usageError,
		EnableBashCompletion: false,
		Action: func(c *cli.Context) error {
			args := command
			if !hasCommand {
				args = c.Args().Slice()
			} else if c.Args().Present() {
				return fmt.Errorf("unexpected %q before \"--\": usage is meshinit [flags] -- COMMAND [ARGS...]", c.Args().First())
			}
			if len(args) == 0 {
				return errNoCommand
			}
			var err error
			code, err = supervise(c, args)
			return err
		},
	}
	if err := app.Run(meshArgs); err != nil {
		fmt.Fprintf(os.Stderr, "%serror: %v\n", logPrefix, err)
		var ec cli.ExitCoder
		if errors.As(err, &ec) && ec.ExitCode() != 0 {
			return ec.ExitCode()
		}
		return shim.ExitOwnFailure
	}
	return code
}

// runFromEnv is run for `meshinit -- COMMAND [ARGS...]`, the form every
// container starts with (ENTRYPOINT ["meshinit", "--"]): no flags, so every
// setting comes from its MESH_* variable or its default. It skips urfave/cli,
// whose app set-up (flag categories, help strings, flag sets, per-flag
// lookups) costs each container start about 0.2 ms and 20 page faults
// (docs/shim.md), and reads the variables exactly as the flags do
// (envSettings).
func runFromEnv(command []string) int {
	code, err := func() (int, error) {
		s, err := settingsFromEnv(os.LookupEnv)
		if err != nil {
			return 0, err
		}
		if len(command) == 0 {
			return 0, errNoCommand
		}
		return supervise(s, command)
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%serror: %v\n", logPrefix, err)
		return shim.ExitOwnFailure
	}
	return code
}

var errNoCommand = errors.New("no command given: usage is meshinit [flags] -- COMMAND [ARGS...] (see meshinit --help)")

// splitCommand cuts argv at the first "--": what comes before is for
// meshinit, what follows is the command, verbatim. urfave/cli would
// otherwise take a command named like one of our verbs ("version") for that
// verb.
func splitCommand(argv []string) (mesh, command []string, found bool) {
	i := slices.Index(argv, "--")
	if i < 0 {
		return argv, nil, false
	}
	return argv[:i], argv[i+1:], true
}

// supervise runs the command under the shim and returns its exit code.
func supervise(s settings, args []string) (int, error) {
	o, err := optionsFrom(s)
	if err != nil {
		return 0, err
	}
	cfg := shim.Config{
		Args:          args,
		Env:           childEnv(os.Environ()),
		KillGroup:     o.killGroup,
		Subreaper:     o.subreaper,
		StopSignal:    o.stopSignal,
		StopTimeout:   o.stopTimeout,
		StopKill:      o.stopKill,
		LogoutReserve: o.logoutTimeout,
		Log:           o.log,
	}
	if !o.meshEnabled() {
		return shim.Run(cfg), nil
	}
	protectSecrets(o)
	m, err := newMesh(o)
	if err != nil {
		o.log.Error("cannot set up the mesh; the command was not started", "err", err)
		return shim.ExitOwnFailure, nil
	}
	cfg.Hooks = boundPrepare(m.hooks(), o.waitTimeout)
	code := shim.Run(cfg)
	m.closeListeners()
	return code, nil
}

// protectSecrets keeps the auth key, and the node secret and WireGuard key
// meshinit is about to hold, out of the command's reach through /proc
// (procsecret): before the command exists, meshinit becomes non-dumpable
// and the key is overwritten where /proc/<pid>/environ and cmdline show it.
func protectSecrets(o *options) {
	if err := procsecret.Protect(o.authKey); err != nil {
		o.log.Warn("cannot fully hide the mesh secrets from the command through /proc", "err", err)
	}
	if authKeyOnCommandLine(os.Args) {
		o.log.Warn("the auth key was given on the command line (--" + flagAuthKey + "): until meshinit overwrote it, any process could read it in /proc/<pid>/cmdline, and the container's configuration still shows it; prefer MESH_AUTHKEY_FILE")
	}
}

// authKeyOnCommandLine reports whether argv sets --authkey before "--".
func authKeyOnCommandLine(argv []string) bool {
	for _, a := range argv[1:] {
		if a == "--" {
			return false
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == flagAuthKey {
			return true
		}
	}
	return false
}

// boundPrepare limits the mesh start-up to MESH_WAIT_TIMEOUT.
func boundPrepare(h shim.Hooks, limit time.Duration) shim.Hooks {
	prepare := h.Prepare
	if prepare == nil {
		return h
	}
	h.Prepare = func(ctx context.Context) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		return prepare(ctx)
	}
	return h
}

// usageError keeps a bad flag to one line on stderr instead of printing the
// whole help to the command's stdout.
func usageError(_ *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%v (see meshinit --help)", err)
}
