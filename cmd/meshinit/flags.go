package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// Flag names. Each flag also reads MESH_<NAME> (dashes as underscores),
// which is how containers usually configure meshinit.
const (
	flagAuthKey       = "authkey"
	flagAuthKeyFile   = "authkey-file"
	flagCoordinator   = "coordinator"
	flagHostname      = "hostname"
	flagNet           = "net"
	flagProxy         = "proxy"
	flagForward       = "forward"
	flagWaitTimeout   = "wait-timeout"
	flagStopSignal    = "stop-signal"
	flagStopTimeout   = "stop-timeout"
	flagLogoutTimeout = "logout-timeout"
	flagKillGroup     = "kill-group"
	flagSubreaper     = "subreaper"
	flagControlSocket = "control-socket"
	flagHealthAddr    = "health-addr"
	flagLogLevel      = "log-level"
	flagLogFormat     = "log-format"
)

// envName is the variable behind a flag: "stop-timeout" -> MESH_STOP_TIMEOUT.
func envName(flag string) string {
	return "MESH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

const (
	catMesh = "Mesh (active only with MESH_AUTHKEY or MESH_AUTHKEY_FILE)"
	catInit = "Init"
	catLog  = "Logging"
)

// flags are meshinit's settings. The usage texts are the reference for
// --help, so they say what each does, its default and its accepted values.
func flags() []cli.Flag {
	str := func(name, category, value, usage string) *cli.StringFlag {
		return &cli.StringFlag{Name: name, Category: category, Value: value, Usage: usage, EnvVars: []string{envName(name)}}
	}
	boolean := func(name, category string, value bool, usage string) *cli.BoolFlag {
		return &cli.BoolFlag{Name: name, Category: category, Value: value, Usage: usage, EnvVars: []string{envName(name)}}
	}
	return []cli.Flag{
		str(flagAuthKey, catMesh, "", "auth key to join the mesh; setting it turns the mesh on. Prefer the variable or MESH_AUTHKEY_FILE to a flag (visible in ps). Never logged, never passed to the command"),
		str(flagAuthKeyFile, catMesh, "", "file holding the auth key (a mounted secret); turns the mesh on"),
		str(flagCoordinator, catMesh, "", "URL of the coordinator, e.g. https://coord.example:8443"),
		str(flagHostname, catMesh, "", "name to ask for in the mesh (default: the container's hostname); collisions get -1, -2, ..."),
		str(flagNet, catMesh, "userspace", "data plane: userspace (no privileges; apps use the proxy) or tun (kernel TUN device, needs NET_ADMIN and /dev/net/tun)"),
		str(flagProxy, catMesh, "127.0.0.1:1055", "SOCKS5 and HTTP proxy listen address in userspace mode (the command gets ALL_PROXY/HTTP_PROXY/HTTPS_PROXY), or off"),
		str(flagForward, catMesh, "", "inbound ports on the node's mesh address forwarded to 127.0.0.1: all, or a list such as 80,443"),
		str(flagWaitTimeout, catMesh, "30s", "how long to wait for the mesh before giving up with exit code 125 (the command is then not started)"),
		str(flagControlSocket, catMesh, "/run/meshinit.sock", "unix socket for the meshinit status and meshinit logout verbs"),
		str(flagHealthAddr, catMesh, "", "address for an HTTP health endpoint, e.g. 127.0.0.1:9090 (default: off)"),
		str(flagStopSignal, catInit, "SIGTERM", "signal that starts the stop budget (as docker's STOPSIGNAL: TERM, SIGQUIT, 3, ...); it is forwarded like every signal"),
		str(flagStopTimeout, catInit, "10s", "stop budget from the first stop signal (docker's default is 10s); at its end the command's process group is killed and meshinit exits"),
		str(flagLogoutTimeout, catInit, "3s", "part of the stop budget kept for logging out: the logout starts when the command exits, or at the latest when only this much is left"),
		boolean(flagKillGroup, catInit, false, "forward signals to the command's whole process group instead of the command alone (1/true to enable)"),
		boolean(flagSubreaper, catInit, true, "when not PID 1, become a child subreaper so orphans are reparented to meshinit and reaped (0/false to disable)"),
		str(flagLogLevel, catLog, "info", "debug, info, warn or error"),
		str(flagLogFormat, catLog, "text", "text or json; meshinit's lines go to stderr, prefixed \"meshinit:\" (text) or with \"src\":\"meshinit\" (json)"),
	}
}
