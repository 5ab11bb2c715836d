package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meshinit/meshinit/node/ctlsock"
	"github.com/urfave/cli/v2"
)

// Flag names. Each flag also reads MESH_<NAME> (dashes as underscores),
// which is how containers usually configure meshinit.
const (
	flagAuthKey       = "authkey"
	flagAuthKeyFile   = "authkey-file"
	flagCoordinator   = "coordinator"
	flagCoordinatorCA = "coordinator-ca"
	flagHostname      = "hostname"
	flagNet           = "net"
	flagProxy         = "proxy"
	flagForward       = "forward"
	flagWaitTimeout   = "wait-timeout"
	flagConnect       = "connect"
	flagWaitFor       = "wait-for"
	flagDNS           = "dns"
	flagStopSignal    = "stop-signal"
	flagStopTimeout   = "stop-timeout"
	flagLogoutTimeout = "logout-timeout"
	flagStopKill      = "stop-kill"
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
		str(flagCoordinator, catMesh, "", "URL of the coordinator, e.g. https://coord.example:8443, or a comma-separated list of replicas"),
		str(flagCoordinatorCA, catMesh, "", "PEM file of the CA (or self-signed certificate) the https coordinator's certificate must chain to, in place of the system's roots; the command's own TLS trust is not changed (default: the system's roots)"),
		str(flagHostname, catMesh, "", "name to ask for in the mesh (default: the container's hostname); collisions get -1, -2, ..."),
		str(flagNet, catMesh, "userspace", "data plane: userspace (no privileges; apps use the proxy) or tun (kernel TUN device, needs NET_ADMIN and /dev/net/tun)"),
		str(flagProxy, catMesh, "127.0.0.1:1055", "SOCKS5 and HTTP proxy listen address in userspace mode (the command gets ALL_PROXY/HTTP_PROXY/HTTPS_PROXY), or off"),
		str(flagForward, catMesh, "all", "inbound TCP ports on the node's mesh address forwarded to 127.0.0.1:<same port> (userspace mode): all, a list such as 80,443, or off"),
		str(flagWaitTimeout, catMesh, "30s", "how long to wait for the mesh (and the MESH_WAIT_FOR peers) before giving up with exit code 125 (the command is then not started)"),
		str(flagConnect, catMesh, "", "local forwarders into the mesh for apps that ignore proxies: LOCAL_PORT:NAME:PORT,... (e.g. 5432:db:5432 listens on 127.0.0.1:5432 and connects to db:5432 over the mesh)"),
		str(flagDNS, catMesh, "on", "TUN mode: answer mesh names with a resolver at 127.0.0.153 and make it the only nameserver in /etc/resolv.conf (rewritten in place, restored on exit; other names go to the original nameservers), or off to leave resolv.conf alone"),
		str(flagWaitFor, catMesh, "", "start the command only once these peers accept a TCP connection over the mesh: NAME:PORT,... (e.g. db:5432), within MESH_WAIT_TIMEOUT"),
		str(flagControlSocket, catMesh, ctlsock.DefaultSocket, "unix socket for the meshinit status and meshinit logout verbs"),
		str(flagHealthAddr, catMesh, "", "address for an HTTP health endpoint, e.g. 127.0.0.1:9090 (default: off)"),
		str(flagStopSignal, catInit, "SIGTERM", "signal that starts the stop budget (as docker's STOPSIGNAL: TERM, SIGQUIT, 3, ...); it is forwarded like every signal, so it must be one meshinit can catch and forward: not KILL, STOP, CHLD, URG, PROF or 32-34"),
		str(flagStopTimeout, catInit, "10s", "stop budget from the first stop signal: set it to your runtime's (docker run --stop-timeout, Kubernetes' terminationGracePeriodSeconds minus any preStop time). It times the logout; meshinit waits for the command however long it takes unless --stop-kill"),
		boolean(flagStopKill, catInit, false, "kill the command's process group at the end of the stop budget and exit 137 (1/true to enable); off: the command's graceful shutdown is never cut short by meshinit"),
		str(flagLogoutTimeout, catInit, "3s", "part of the stop budget kept for logging out: the logout starts when the command exits, or at the latest when only this much is left (the command keeps running); also the limit of meshinit logout"),
		boolean(flagKillGroup, catInit, false, "forward signals to the command's whole process group instead of the command alone (1/true to enable)"),
		boolean(flagSubreaper, catInit, true, "when not PID 1, become a child subreaper so orphans are reparented to meshinit and reaped (0/false to disable)"),
		str(flagLogLevel, catLog, "info", "debug, info, warn or error"),
		str(flagLogFormat, catLog, "text", "text or json; meshinit's lines go to stderr, prefixed \"meshinit:\" (text) or with \"src\":\"meshinit\" (json)"),
	}
}

// settings are the raw values of the flags above: urfave/cli's parsed
// command line (*cli.Context) or, for `meshinit -- COMMAND`, the environment
// alone (envSettings).
type settings interface {
	String(name string) string
	Bool(name string) bool
}

// envSettings are the flags' values when the command line sets none: each
// flag's MESH_* variable if it is set, else the flag's default. This is what
// urfave/cli v2 does for a flag absent from the command line
// (TestEnvSettingsMatchCLI holds the two together): a string variable is
// taken as it is, even when empty; a boolean one is read by
// strconv.ParseBool, and an empty one means false.
type envSettings struct {
	strs  map[string]string
	bools map[string]bool
}

// settingsFromEnv reads every flag of flags() from lookup (os.LookupEnv).
func settingsFromEnv(lookup func(string) (string, bool)) (*envSettings, error) {
	s := &envSettings{strs: map[string]string{}, bools: map[string]bool{}}
	for _, f := range flags() {
		switch f := f.(type) {
		case *cli.StringFlag:
			s.strs[f.Name] = f.Value
			if v, ok := lookupFirst(lookup, f.EnvVars); ok {
				s.strs[f.Name] = v
			}
		case *cli.BoolFlag:
			s.bools[f.Name] = f.Value
			v, ok := lookupFirst(lookup, f.EnvVars)
			if !ok {
				continue
			}
			if v == "" {
				s.bools[f.Name] = false
				continue
			}
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s (--%s) is %q: use 1 or true to enable, 0 or false to disable", envName(f.Name), f.Name, v)
			}
			s.bools[f.Name] = b
		default:
			// A new kind of flag needs its reading here too; the unit
			// tests run this for every flag, so this is caught there.
			return nil, fmt.Errorf("internal error: flag --%s (%T) cannot be read from the environment", f.Names()[0], f)
		}
	}
	return s, nil
}

// lookupFirst returns the value of the first of names that is set.
func lookupFirst(lookup func(string) (string, bool), names []string) (string, bool) {
	for _, n := range names {
		if v, ok := lookup(n); ok {
			return v, true
		}
	}
	return "", false
}

func (s *envSettings) String(name string) string { return s.strs[name] }
func (s *envSettings) Bool(name string) bool     { return s.bools[name] }
