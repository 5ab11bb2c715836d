package main

import "strings"

// secretEnv are variables the command must never see. The auth key is
// stripped whether or not the mesh is on: an app (or a crash dump of its
// environment) must not be able to leak it.
var secretEnv = []string{"MESH_AUTHKEY"}

// childEnv is environ without the secret variables.
func childEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !isSecret(name) {
			out = append(out, kv)
		}
	}
	return out
}

func isSecret(name string) bool {
	for _, s := range secretEnv {
		if name == s {
			return true
		}
	}
	return false
}
