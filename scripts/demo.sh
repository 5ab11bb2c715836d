#!/usr/bin/env bash
# make demo: the README's main job, end to end on this machine, in a temp dir,
# with a readable timeline. Everything it starts is stopped and removed at
# the end, also on failure or Ctrl-C.
#
#   1. meshcoord on an embedded SQLite file, ephemeral GC timeout 3s
#   2. an ephemeral, reusable auth key
#   3. "web": meshinit wrapping an HTTP server on its own 127.0.0.1
#   4. "client": meshinit wrapping a client that GETs http://web:PORT/ BY NAME
#      through the proxy meshinit gives it (HTTP_PROXY), over the mesh
#   5. SIGTERM to client's meshinit: logged out, deleted at once (reason logout)
#   6. SIGKILL to web's meshinit: no logout; collected after 3s (reason gc)
#
# Only loopback addresses are used: the demo runs in a private network
# namespace that has nothing but lo (as root: unshare --net; otherwise in a
# user namespace), so WireGuard's UDP, which goes to every address a node
# announces, never touches the host's own interfaces. Needs bin/meshinit and
# bin/meshcoord (make demo builds them first) and Go to build the demo app.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${MESHINIT_DEMO_NETNS:-}" ]]; then
	export MESHINIT_DEMO_NETNS=1
	if [[ $(id -u) -eq 0 ]]; then
		exec unshare --net -- bash "$0" "$@"
	fi
	exec unshare --user --map-root-user --net -- bash "$0" "$@"
fi
# A new network namespace starts with lo down.
ip link set lo up 2>/dev/null || { echo "demo: cannot bring up lo in the demo's network namespace (needs iproute2's ip)" >&2; exit 1; }
BIN=${BIN:-bin}
GC_TIMEOUT=${GC_TIMEOUT:-3s}
for b in meshinit meshcoord; do
	[[ -x $BIN/$b ]] || { echo "demo: $BIN/$b missing: run make demo (it builds first)" >&2; exit 1; }
done
BIN=$(cd "$BIN" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/meshinit-demo.XXXXXX")
export MESHCOORD_ADMIN_SOCKET=$work/admin.sock
declare -a cleanup_pids=()

# children PID: the direct children of PID.
children() { cat /proc/"$1"/task/*/children 2>/dev/null || true; }
# kill_tree PID: SIGKILL PID and everything below it. Outside a PID
# namespace an app outlives its init, so meshinit's command is killed too,
# not left running after the demo. Its stderr is discarded so that bash's
# "Killed" notice for the job does not break into the timeline.
kill_tree() {
	local kids kid
	kids=$(children "$1")
	kill -KILL "$1" || true
	for kid in $kids; do kill_tree "$kid"; done
} 2>/dev/null

cleanup() {
	local code=$?
	for pid in "${cleanup_pids[@]}"; do
		kill_tree "$pid"
	done
	wait 2>/dev/null || true
	if ((code != 0)); then
		echo
		echo "demo FAILED (exit $code); logs:"
		for f in "$work"/*.log; do
			[[ -f $f ]] && { echo "--- $f"; tail -n 20 "$f"; }
		done
	fi
	rm -rf "$work"
	exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$EPOCHREALTIME
# say prints one timeline line: wall clock, time since start, text.
say() {
	local now=$EPOCHREALTIME
	printf '%s  +%ss  %s\n' "$(date +%T.%3N)" "$(awk -v a="$now" -v b="$start" 'BEGIN { printf "%7.3f", a - b }')" "$*"
}
ms_since() { awk -v a="$EPOCHREALTIME" -v b="$1" 'BEGIN { printf "%d", (a - b) * 1000 }'; }
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
indent() { sed 's/^/                          | /'; }

# wait_for CMD...: retry CMD until it succeeds, for up to 15 s.
wait_for() {
	local deadline=$((SECONDS + 15))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || { echo "demo: timed out waiting for: $*" >&2; return 1; }
		sleep 0.02
	done
}

say "building the demo app (cmd/meshdemo)"
CGO_ENABLED=0 go build -o "$work/meshdemo" ./cmd/meshdemo

say "starting meshcoord: SQLite at $work/coord.db, ephemeral GC timeout $GC_TIMEOUT"
"$BIN/meshcoord" serve --listen 127.0.0.1:0 --db "$work/coord.db" --addr-file "$work/addr" \
	--ephemeral-timeout "$GC_TIMEOUT" --reconnect-grace 1s --log-format text >"$work/meshcoord.log" 2>&1 &
cleanup_pids+=($!)
wait_for test -s "$work/addr"
coord=$(<"$work/addr")
say "meshcoord listening at $coord"

key=$("$BIN/meshcoord" keys create --ephemeral --reusable --description demo 2>/dev/null)
say "created an ephemeral, reusable auth key (${key:0:21}…, shown once)"

# Follow the coordinator's lifecycle events into the timeline.
"$BIN/meshcoord" events --follow --json 2>>"$work/events.log" | while read -r line; do
	type=$(sed -n 's/.*"type":"\([^"]*\)".*/\1/p' <<<"$line")
	name=$(sed -n 's/.*"name":"\([^"]*\)".*/\1/p' <<<"$line")
	reason=$(sed -n 's/.*"reason":"\([^"]*\)".*/\1/p' <<<"$line")
	at=$(sed -n 's/.*"time":"\([^"]*\)".*/\1/p' <<<"$line")
	say "  coordinator event: $name $type${reason:+ (reason $reason)}"
	# the coordinator's own timestamp, as seconds since the epoch
	echo "$(date -d "$at" +%s.%N) $type $name $reason" >>"$work/events.txt"
done &
cleanup_pids+=($!)

# node NAME LOGFILE CMD...: meshinit with the key wraps CMD, in the background.
node() {
	local name=$1 out=$2
	shift 2
	MESH_AUTHKEY=$key MESH_COORDINATOR=$coord MESH_HOSTNAME=$name \
		MESH_PROXY=127.0.0.1:0 MESH_FORWARD=all MESH_CONTROL_SOCKET="$work/$name.sock" \
		MESH_LOG_LEVEL=info "$BIN/meshinit" -- "$@" >"$out" 2>"$work/$name.log" &
	last_pid=$!
	cleanup_pids+=($last_pid)
}
status() { MESH_CONTROL_SOCKET="$work/$1.sock" "$BIN/meshinit" status "${@:2}"; }
is_up() { status "$1" --json | grep -q '"state": "up"'; }
# wait_event TYPE NAME: wait until the coordinator reported it; print the
# event's epoch time and its reason (empty but for deleted).
find_event() { awk -v t="$1" -v n="$2" '$2 == t && $3 == n { line = $1 " " $4 } END { if (line == "") exit 1; print line }' "$work/events.txt"; }
wait_event() {
	wait_for find_event "$1" "$2"
	find_event "$1" "$2"
}

say "starting node \"web\": meshinit -- meshdemo serve -listen 127.0.0.1:0"
t=$EPOCHREALTIME
node web "$work/web.out" "$work/meshdemo" serve -listen 127.0.0.1:0 -message "hello over the mesh"
web_pid=$last_pid
wait_for is_up web
wait_for grep -q "serving on" "$work/web.out"
port=$(sed -n 's/^serving on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/web.out")
say "web is up after $(ms_since "$t") ms (exec → app serving), app on 127.0.0.1:$port; meshinit status:"
status web | indent

say "starting node \"client\": meshinit -- meshdemo get http://web:$port/ (by name, through the proxy)"
t=$EPOCHREALTIME
node client "$work/client.out" "$work/meshdemo" get -wait "http://web:$port/"
client_pid=$last_pid
wait_for grep -q "hello" "$work/client.out"
say "client got an answer $(ms_since "$t") ms after exec:"
indent <"$work/client.out"
say "the mesh as the coordinator sees it (meshcoord nodes list):"
"$BIN/meshcoord" nodes list | indent

say "SIGTERM to client's meshinit (docker stop): the app exits, meshinit logs the node out"
t=$EPOCHREALTIME
kill -TERM "$client_pid"
read -r deleted reason <<<"$(wait_event deleted client)"
wait "$client_pid" && code=0 || code=$?
say "client deleted $(ms_between "$t" "$deleted") ms after the signal (reason $reason); meshinit exited $code"

say "SIGKILL to web's meshinit (a crash: no chance to log out)"
t=$EPOCHREALTIME
# A container would take the app down with its PID 1; here kill_tree does.
{ kill_tree "$web_pid"; wait "$web_pid" || true; } 2>/dev/null
wait_event offline web >/dev/null
say "web is offline; the coordinator collects it after the $GC_TIMEOUT GC timeout…"
read -r deleted reason <<<"$(wait_event deleted web)"
say "web deleted $(ms_between "$t" "$deleted") ms after SIGKILL (reason $reason)"

say "what is left (meshcoord nodes list):"
"$BIN/meshcoord" nodes list | indent
say "demo done: cleaning up $work"
