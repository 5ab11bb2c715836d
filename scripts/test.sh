#!/usr/bin/env bash
# The full test run (README's test command, what CI runs as root):
#   1. lint: gofmt and go vet
#   2. unit tests with -race, fuzz seed corpora included (no root, no daemons)
#   3. integration suites: real binaries as PID 1 in PID namespaces, network
#      namespaces, a private dockerd and containerd (installed when missing),
#      the store conformance suite on a real PostgreSQL; then the
#      coordinator's lifecycle suites again with meshcoord on PostgreSQL
#   4. the demo (the README's main job) as a smoke test
# Under CI=true a skipped test, or a package that ran no test, fails the run:
# nothing may silently not run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -mod=readonly"

step() { printf '\n=== %s (%s)\n' "$1" "$(date +%T)"; }

# failed_output LOG prints, last, what each failed test wrote between its
# "=== RUN" and the next test's: its own messages (t.Fatalf's among them),
# which the context above may have cut when cleanup logs followed them.
failed_output() {
	local name
	grep -oE -- '--- FAIL: [^ ]+' "$1" | awk '{print $3}' | sort -u | while read -r name; do
		echo "--- what $name wrote (last 80 lines):"
		awk -v run="=== RUN   $name" '$0 == run {on = 1; next} on && /^=== (RUN|PAUSE|CONT)|^ *--- (PASS|FAIL|SKIP)/ {on = 0} on' "$1" | tail -80
	done
}

# gotest NAME LOG SHOW ARGS... runs "go test -v ARGS..." with the whole
# output in LOG and the lines matching SHOW on the terminal. It fails on a
# failing test and, under CI=true, on any skipped test or a package that
# ran none; locally those are listed as a warning.
gotest() {
	local name=$1 log=$2 show=$3 rc
	shift 3
	set +e
	go test -v "$@" 2>&1 | tee "$log" | grep --line-buffered -E "$show"
	rc=${PIPESTATUS[0]}
	set -e
	if ((rc != 0)); then
		grep -B5 -A40 -E '^(--- FAIL|FAIL|panic)' "$log" | head -400 || true
		failed_output "$log"
		echo "$name FAILED (exit $rc; full log: $log)" >&2
		exit 1
	fi
	# "--- SKIP: Name" (indented for subtests); the reasons are in the log
	local skipped
	skipped=$(grep -E '^ *--- SKIP|\[no tests to run\]' "$log") || true
	if [[ -n $skipped ]]; then
		if [[ "${CI:-}" == "true" ]]; then
			echo "$skipped" >&2
			echo "$name FAILED: under CI=true every test must run, none may skip (reasons in $log)" >&2
			exit 1
		fi
		echo "$skipped"
		echo "warning: $name skipped the tests above (reasons in $log; under CI=true that fails)"
	fi
	echo "$name passed"
}

step "lint"
bash scripts/lint.sh

step "unit tests (-race)"
units=$(go list ./... | grep -v '/integration/')
gotest "unit tests" /tmp/meshinit-unit.log '^(--- FAIL|ok|FAIL|panic)' -race -count=1 -timeout 20m $units

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
gotest "integration suites" /tmp/meshinit-integration.log '^(--- |ok|FAIL|panic)' -count=1 -timeout 60m -p 1 ./integration/...

# The lifecycle suites once more with every coordinator on PostgreSQL (a
# fresh database each, on one private server): the coordinator suite whole,
# the mesh suite's lifecycle tests, not its data-plane ones (which do not
# depend on the database and would only double the time), and the relay
# suite (its coordinators restart mid-transfer and run in namespaces).
step "lifecycle suites with meshcoord on PostgreSQL"
export MESHINIT_COORD_DB=postgres
gotest "coordinator suite on PostgreSQL" /tmp/meshinit-coordinator-pg.log '^(--- |ok|FAIL|panic)' \
	-count=1 -timeout 20m -p 1 ./integration/coordinator/
gotest "mesh lifecycle tests on PostgreSQL" /tmp/meshinit-mesh-pg.log '^(--- |ok|FAIL|panic)' \
	-count=1 -timeout 20m -p 1 ./integration/mesh/ \
	-run '^Test(StopSignalLogsOutAtOnce|KilledNodeIsCollectedAfterTimeout|SlowCommandStillLogsOutBeforeDeadline|CoordinatorGoneBeforeStop|LogoutVerbWhileCommandRuns|NodesSurviveCoordinatorRestart)$'
gotest "relay suite on PostgreSQL" /tmp/meshinit-relay-pg.log '^(--- |ok|FAIL|panic)' \
	-count=1 -timeout 20m -p 1 ./integration/relay/
unset MESHINIT_COORD_DB

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
