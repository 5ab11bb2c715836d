package main

import (
	"os"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// cliSettings runs urfave/cli with meshinit's flags and no command-line
// flags, as `meshinit [flags] --` would parse them, and returns every flag's
// value, or cli's error.
func cliSettings(t *testing.T) (map[string]string, error) {
	t.Helper()
	got := map[string]string{}
	app := &cli.App{
		Name:           "meshinit",
		Flags:          flags(),
		Writer:         &strings.Builder{},
		ErrWriter:      &strings.Builder{},
		ExitErrHandler: func(*cli.Context, error) {},
		Action: func(c *cli.Context) error {
			for k, v := range readAll(c) {
				got[k] = v
			}
			return nil
		},
	}
	return got, app.Run([]string{"meshinit"})
}

// readAll reads every flag through the settings interface.
func readAll(s settings) map[string]string {
	out := map[string]string{}
	for _, f := range flags() {
		switch f := f.(type) {
		case *cli.StringFlag:
			out[f.Name] = "string:" + s.String(f.Name)
		case *cli.BoolFlag:
			if s.Bool(f.Name) {
				out[f.Name] = "bool:true"
			} else {
				out[f.Name] = "bool:false"
			}
		}
	}
	return out
}

// setEnv makes env the only MESH_* variables for the test.
func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "MESH_") {
			t.Setenv(k, "") // restored after the test
			os.Unsetenv(k)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// TestEnvSettingsMatchCLI holds the fast path of `meshinit -- COMMAND`
// (settingsFromEnv) to what urfave/cli reads from the same environment.
func TestEnvSettingsMatchCLI(t *testing.T) {
	for _, env := range []map[string]string{
		{},
		{"MESH_STOP_TIMEOUT": "5", "MESH_STOP_SIGNAL": "quit", "MESH_LOG_LEVEL": "debug", "MESH_LOG_FORMAT": "json"},
		{"MESH_NET": "", "MESH_PROXY": " off ", "MESH_WAIT_TIMEOUT": " 1m ", "MESH_HOSTNAME": "web=1"},
		{"MESH_AUTHKEY": "k-123", "MESH_COORDINATOR": "http://127.0.0.1:1", "MESH_FORWARD": "80,443", "MESH_CONTROL_SOCKET": ""},
		{"MESH_KILL_GROUP": "1", "MESH_SUBREAPER": "0"},
		{"MESH_KILL_GROUP": "true", "MESH_SUBREAPER": "FALSE"},
		{"MESH_KILL_GROUP": "T", "MESH_SUBREAPER": ""},
		{"MESH_KILL_GROUP": "", "MESH_SUBREAPER": "f"},
	} {
		setEnv(t, env)
		want, err := cliSettings(t)
		if err != nil {
			t.Fatalf("env %v: urfave/cli failed: %v", env, err)
		}
		s, err := settingsFromEnv(os.LookupEnv)
		if err != nil {
			t.Fatalf("env %v: %v", env, err)
		}
		got := readAll(s)
		if len(got) != len(flags()) {
			t.Fatalf("read %d flags, there are %d", len(got), len(flags()))
		}
		for name, w := range want {
			if got[name] != w {
				t.Errorf("env %v: --%s is %q, urfave/cli reads %q", env, name, got[name], w)
			}
		}
	}
}

func TestEnvSettingsBadBool(t *testing.T) {
	for _, v := range []string{"yes", "2", "on"} {
		setEnv(t, map[string]string{"MESH_KILL_GROUP": v})
		if _, err := cliSettings(t); err == nil {
			t.Fatalf("urfave/cli accepts MESH_KILL_GROUP=%q; the fast path must too", v)
		}
		_, err := settingsFromEnv(os.LookupEnv)
		if err == nil || !strings.Contains(err.Error(), "MESH_KILL_GROUP") || !strings.Contains(err.Error(), v) {
			t.Fatalf("MESH_KILL_GROUP=%q: error %v, want one naming the variable and the value", v, err)
		}
	}
}

// TestFastPathBadSettingsExit125 is TestBadSettingsExit125 for settings
// that come from the environment of `meshinit -- COMMAND`.
func TestFastPathBadSettingsExit125(t *testing.T) {
	for _, env := range []map[string]string{
		{"MESH_STOP_TIMEOUT": "never"},
		{"MESH_LOGOUT_TIMEOUT": "0"},
		{"MESH_STOP_SIGNAL": "SIGKILL"},
		{"MESH_STOP_SIGNAL": "SIGCHLD"},
		{"MESH_STOP_SIGNAL": "SIGURG"},
		{"MESH_STOP_SIGNAL": "SIGPROF"},
		{"MESH_STOP_SIGNAL": "33"},
		{"MESH_STOP_SIGNAL": "SIGSTOP"},
		{"MESH_NET": "wifi"},
		{"MESH_LOG_LEVEL": "loud"},
		{"MESH_SUBREAPER": "maybe"},
	} {
		setEnv(t, env)
		if got := run([]string{"meshinit", "--", "true"}); got != 125 {
			t.Errorf("env %v: run = %d, want 125", env, got)
		}
	}
	setEnv(t, nil)
	if got := run([]string{"meshinit", "--"}); got != 125 {
		t.Errorf("no command: run = %d, want 125", got)
	}
}
