package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshinit/meshinit/node/dataplane"
	"github.com/meshinit/meshinit/shim"
)

// options are meshinit's settings, each from a flag or its MESH_* variable
// (flags.go lists them). The mesh node (mesh.go, control.go) reads them too.
type options struct {
	authKey, authKeyFile, coordinator, hostname, netMode, proxy, forward string
	waitTimeout, stopTimeout, logoutTimeout                              time.Duration
	stopSignal                                                           syscall.Signal
	stopKill, killGroup, subreaper                                       bool
	controlSocket, healthAddr, coordinatorCA                             string
	connect, waitFor, dns                                                string
	log                                                                  *slog.Logger
}

// meshEnabled says whether meshinit joins the mesh: only with an auth key.
// Without one it is a plain init and no mesh code runs.
func (o *options) meshEnabled() bool { return o.authKey != "" || o.authKeyFile != "" }

// optionsFrom reads and checks every setting. Errors name the variable, the
// bad value (never an auth key) and what is accepted.
func optionsFrom(c settings) (*options, error) {
	o := &options{
		// A copy: the value read shares memory with the environment or
		// argv block, which procsecret overwrites.
		authKey:       strings.Clone(c.String(flagAuthKey)),
		authKeyFile:   c.String(flagAuthKeyFile),
		coordinator:   c.String(flagCoordinator),
		coordinatorCA: c.String(flagCoordinatorCA),
		hostname:      c.String(flagHostname),
		netMode:       c.String(flagNet),
		proxy:         c.String(flagProxy),
		forward:       c.String(flagForward),
		stopKill:      c.Bool(flagStopKill),
		killGroup:     c.Bool(flagKillGroup),
		subreaper:     c.Bool(flagSubreaper),
		controlSocket: c.String(flagControlSocket),
		healthAddr:    c.String(flagHealthAddr),
		connect:       c.String(flagConnect),
		waitFor:       c.String(flagWaitFor),
		dns:           c.String(flagDNS),
	}
	var err error
	if o.waitTimeout, err = positiveDuration(c, flagWaitTimeout); err != nil {
		return nil, err
	}
	if o.stopTimeout, err = positiveDuration(c, flagStopTimeout); err != nil {
		return nil, err
	}
	if o.logoutTimeout, err = positiveDuration(c, flagLogoutTimeout); err != nil {
		return nil, err
	}
	if o.stopSignal, err = shim.ParseSignal(c.String(flagStopSignal)); err != nil {
		return nil, fmt.Errorf("MESH_STOP_SIGNAL (--%s): %w", flagStopSignal, err)
	}
	if err := shim.CheckStopSignal(o.stopSignal); err != nil {
		return nil, fmt.Errorf("MESH_STOP_SIGNAL (--%s): %w", flagStopSignal, err)
	}
	// Checked here too, not only when the mesh starts, so that a typo fails
	// even without a key; dataplane owns the list of modes.
	if _, err := dataplane.ParseMode(o.netMode); err != nil {
		return nil, fmt.Errorf("MESH_NET (--%s): %w", flagNet, err)
	}
	if o.log, err = newLogger(c.String(flagLogLevel), c.String(flagLogFormat)); err != nil {
		return nil, err
	}
	return o, nil
}

// positiveDuration reads a duration flag. Like docker's --stop-timeout, a
// bare number means seconds; otherwise Go syntax ("1m30s", "500ms").
func positiveDuration(c settings, name string) (time.Duration, error) {
	raw := strings.TrimSpace(c.String(name))
	d, err := parseDuration(raw)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s (--%s) is %q: give a positive duration such as 10s, 1m30s or 10 (seconds)", envName(name), name, raw)
	}
	return d, nil
}

func parseDuration(s string) (time.Duration, error) {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > int64(time.Duration(1<<63-1)/time.Second) {
			return 0, fmt.Errorf("%q seconds is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}
