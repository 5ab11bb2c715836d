#!/usr/bin/env bash
# A private PostgreSQL server for tests, benchmarks and humans: Debian's
# postgresql, one cluster in a directory of its own, its unix socket in that
# directory and TCP on 127.0.0.1 only. Nothing system-wide is started.
#
#   postgres.sh install          install postgresql (server and psql) from
#                                Debian when missing, without letting the
#                                package start its own cluster
#   postgres.sh start [DIR]      create DIR (a new temp dir if omitted) and its
#                                cluster on first use, start the server, print
#                                the environment to use it (eval it):
#                                MESHCOORD_DB (a postgres:// URL), PGHOST, PGPORT
#   postgres.sh stop DIR         stop the server (fast shutdown); the cluster
#                                stays, and "start DIR" starts it again on the
#                                same port with the same data
#   postgres.sh kill DIR         stop it as a crash would (immediate shutdown)
#   postgres.sh remove DIR       stop it and delete DIR
#   postgres.sh url DIR          print the server's postgres:// URL
#
# Example:
#   eval "$(scripts/postgres.sh start)"      # prints "stop with: …"
#   meshcoord serve --db "$MESHCOORD_DB"
#
# The server refuses to run as root: as root, initdb and the server run as
# the "postgres" user the package creates (the cluster directory is theirs);
# as anyone else they run as you. Authentication is "trust" on the private
# socket and on 127.0.0.1: the server is for this machine's tests only.
# Extra server settings: POSTGRES_OPTS="-c name=value …" at start
# (the tests add fsync=off; leave it out for honest durability).
# The Go suites use this script through integration/internal/pgtest.
set -euo pipefail

die() {
	echo "postgres.sh: $*" >&2
	exit 1
}

# bindir is the newest installed PostgreSQL's programs (Debian keeps them
# off PATH, in /usr/lib/postgresql/<version>/bin).
bindir() {
	local found
	found=$(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -1) ||
		die "no PostgreSQL server installed: run $0 install"
	dirname "$found"
}

install() {
	local need=()
	compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
	command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
	((${#need[@]})) || return 0
	[[ $(id -u) -eq 0 ]] || die "installing ${need[*]} needs root"
	echo "installing: ${need[*]}"
	# policy-rc.d keeps the package's init script from starting the system
	# cluster: our servers are private, on their own sockets and ports.
	local policy_added= rc=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		policy_added=1
	fi
	{ apt-get update -qq &&
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } || rc=$?
	# removed on failure too: it would keep every later package's daemon down
	if [[ -n $policy_added ]]; then rm -f /usr/sbin/policy-rc.d; fi
	((rc == 0)) || die "apt-get install ${need[*]} failed (exit $rc)"
}

# as_owner runs a command as the cluster's owner: "postgres" when we are
# root, ourselves otherwise.
as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		id postgres >/dev/null 2>&1 || die "no 'postgres' user: run $0 install"
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# free_port prints a TCP port on 127.0.0.1 that nothing uses: below the
# kernel's ephemeral range (where outgoing connections take their ports, any
# of which would make the bind fail) and in no socket of /proc/net/tcp*.
free_port() {
	local lo port
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range
	((lo > 12000)) || lo=32768
	for _ in $(seq 200); do
		port=$((10000 + RANDOM % (lo - 10000)))
		if ! awk -v p="$(printf ':%04X' "$port")" 'index($2, p) == length($2) - 4 {found=1} END {exit !found}' \
			/proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			echo "$port"
			return
		fi
	done
	die "no free port found"
}

check_dir() {
	[[ -n ${1:-} && -f $1/port ]] || die "not a postgres.sh directory: ${1:-(none)} (make one with: $0 start)"
}

url() {
	check_dir "$1"
	echo "postgres://postgres@127.0.0.1:$(cat "$1/port")/postgres?sslmode=disable"
}

init_cluster() {
	local dir=$1 bin=$2
	[[ $(id -u) -ne 0 ]] || chown postgres: "$dir"
	chmod 0700 "$dir"
	as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		die "initdb failed: $(tail -5 "$dir/initdb.log")"
	free_port >"$dir/port"
}

start() {
	local dir=${1:-} bin
	bin=$(bindir)
	if [[ -z $dir ]]; then
		dir=$(mktemp -d /tmp/mipg-XXXXXX)
	fi
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local fresh=
	if [[ ! -f $dir/data/PG_VERSION ]]; then
		init_cluster "$dir" "$bin"
		fresh=1
	fi
	# -w waits until the server accepts connections; the socket lives in
	# DIR (at most 107 bytes with its name: keep DIR short). A new cluster
	# whose port was taken meanwhile gets another; a restarted one keeps
	# its port, which its clients know.
	local port tries=0
	until port=$(cat "$dir/port") && as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
		-o "-k $dir -p $port -c listen_addresses=127.0.0.1 ${POSTGRES_OPTS:-}" >/dev/null; do
		if [[ -n $fresh ]] && ((++tries < 5)) && grep -q 'could not bind' "$dir/server.log"; then
			free_port >"$dir/port"
			continue
		fi
		die "the server did not start: $(tail -5 "$dir/server.log")"
	done
	echo "export MESHCOORD_DB='$(url "$dir")' PGHOST=$dir PGPORT=$port PGUSER=postgres"
	echo "# stop with: $0 stop $dir (keeps the data) or $0 remove $dir"
}

stop_mode() {
	local dir=$1 mode=$2 bin
	check_dir "$dir"
	bin=$(bindir)
	[[ -f $dir/data/postmaster.pid ]] || return 0
	as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null
}

remove() {
	local dir=${1:-}
	check_dir "$dir"
	stop_mode "$dir" immediate || true
	rm -rf "$dir"
}

cmd=${1:-}
shift || true
case "$cmd" in
install) install ;;
start) start "$@" ;;
stop) stop_mode "${1:-}" fast ;;
kill) stop_mode "${1:-}" immediate ;;
remove) remove "$@" ;;
url) url "${1:-}" ;;
*)
	echo "usage: $0 install | start [DIR] | stop DIR | kill DIR | remove DIR | url DIR" >&2
	exit 2
	;;
esac
