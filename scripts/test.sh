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
set +e
go test -count=1 -timeout 60m -p 1 -v ./integration/... 2>&1 | tee /tmp/meshinit-integration.log | grep --line-buffered -E '^(--- |ok|FAIL|panic)'
rc=${PIPESTATUS[0]}
set -e
if ((rc == 0)); then
	echo "integration suites passed"
else
	grep -B5 -A40 -E '^(--- FAIL|FAIL|panic)' /tmp/meshinit-integration.log | head -400
	echo "integration suites FAILED (exit $rc; full log: /tmp/meshinit-integration.log)" >&2
	exit 1
fi

step "demo (the README's main job, as a smoke test)"
make -s build
if bash scripts/demo.sh >/tmp/meshinit-demo.log 2>&1 &&
	grep -q 'client deleted .*reason logout' /tmp/meshinit-demo.log &&
	grep -q 'web deleted .*reason gc' /tmp/meshinit-demo.log; then
	echo "demo passed: logout deletion and GC deletion both shown"
else
	cat /tmp/meshinit-demo.log
	echo "demo FAILED" >&2
	exit 1
fi
