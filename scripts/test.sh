#!/usr/bin/env bash
# The full test run (README's test command, what CI runs as root):
#   1. lint: gofmt and go vet
#   2. unit tests with -race, fuzz seed corpora included (no root, no daemons)
#   3. integration suites: real binaries as PID 1 in PID namespaces, network
#      namespaces, a private dockerd and containerd (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

step "lint"
bash scripts/lint.sh

step "unit tests (-race)"
units=$(go list ./... | grep -v '/integration/')
go test -race -count=1 -timeout 20m $units

if [[ $(id -u) -ne 0 ]]; then
	if [[ "${CI:-}" == "true" ]]; then
		echo "CI must run as root: the integration suites need namespaces and daemons" >&2
		exit 1
	fi
	echo "not root: integration suites skipped (run make test as root for everything)"
	exit 0
fi

step "runtimes (docker.io, containerd, runc, tini)"
bash scripts/runtimes.sh install

step "integration suites"
export MESHINIT_INTEGRATION=1
go test -count=1 -timeout 60m -p 1 -v ./integration/... 2>&1 | tee /tmp/meshinit-integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)' || true
if ! grep -qE '^(FAIL|panic)' /tmp/meshinit-integration.log && grep -q '^ok' /tmp/meshinit-integration.log; then
	echo "integration suites passed"
else
	grep -B5 -A40 -E '^(--- FAIL|FAIL|panic)' /tmp/meshinit-integration.log | head -400
	echo "integration suites FAILED (full log: /tmp/meshinit-integration.log)" >&2
	exit 1
fi
