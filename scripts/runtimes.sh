#!/usr/bin/env bash
# Container runtimes for the integration suites and for humans.
#
#   runtimes.sh install                 install docker.io, containerd, runc, tini,
#                                       util-linux, iproute2, and for the names
#                                       suite busybox-static, dnsmasq-base and curl,
#                                       from Debian when missing; PostgreSQL
#                                       (server and psql) via postgres.sh install
#   runtimes.sh start [docker|containerd|all]
#                                       start private daemons in a new temp dir and
#                                       print the environment to use them (eval it)
#   runtimes.sh stop DIR                stop the daemons of DIR and clean up after them
#
# Used by the Go suites (integration/internal/runtimes), which start the daemon
# processes themselves so they die with the test, but take everything else
# from here: this file is the one source of truth for the daemon flags and
# the cleanup.
#   runtimes.sh dockerd-args DIR        the dockerd argv, one per line
#   runtimes.sh containerd-config DIR   write DIR/containerd/config.toml, print its path
#   runtimes.sh bridge-up DIR           create the bridge containerd containers attach to
#   runtimes.sh cleanup DIR             after the daemons exited: mounts, network
#                                       namespaces, bridges, cgroups, the dir itself
#   runtimes.sh docker-cli              the docker CLI matching the daemon (see below)
#   runtimes.sh names DIR               cgroup parent, bridge and netns prefix of DIR
#
# Network rule: every address a container gets is in 198.18.0.0/15.
#   docker:     default bridge 198.18.0.1/24 (--bip), user networks from
#               198.19.0.0/16 in /24s; no iptables rules, no ip_forward change,
#               no masquerading, DNS pointed at the container's own loopback so
#               nothing ever asks the host's resolver.
#   containerd: no CNI; the suite gives each container a network namespace
#               with a veth on a bridge 198.18.16.1/24 and no default route.
# Cgroups (v1 here): every container of a DIR lives under /meshinit-<dir name>
# (dockerd --cgroup-parent; the containerd suite sets the same parent in its
# specs), so cleanup removes exactly what we created.
set -euo pipefail

DOCKER_BIP=198.18.0.1/24
DOCKER_POOL=base=198.19.0.0/16,size=24
CTR_BRIDGE_ADDR=198.18.16.1/24

die() {
	echo "runtimes.sh: $*" >&2
	exit 1
}

# tag is the short unique name of a runtime dir, used for cgroups, netns and
# bridge names (interface names are limited to 15 bytes).
tag() { basename "$1" | tr -cd 'A-Za-z0-9' | tail -c 10; }
cgroup_parent() { echo "meshinit-$(tag "$1")"; }
ctr_bridge() { echo "mb$(tag "$1")"; }
netns_prefix() { echo "mn$(tag "$1")-"; }

install() {
	need=()
	for p in docker:docker.io dockerd:docker.io containerd:containerd containerd-shim-runc-v2:containerd \
		runc:runc tini:tini cgroupfs-mount:cgroupfs-mount unshare:util-linux nsenter:util-linux ip:iproute2 \
		busybox:busybox-static dnsmasq:dnsmasq-base getent:libc-bin \
		nft:nftables tinyproxy:tinyproxy curl:curl; do
		command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p#*:}")
	done
	# The Debian docker CLI must be there even when another docker shadows it
	# on PATH: it is the one that matches the daemon (see docker-cli).
	[[ -x /usr/bin/docker ]] || need+=(docker.io)
	if ((${#need[@]})); then
		mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
		echo "installing: ${need[*]}"
		# Keep the packages' init scripts from starting system daemons: ours
		# are private, and a system dockerd would claim docker0.
		local policy_added=
		if [[ ! -e /usr/sbin/policy-rc.d ]]; then
			printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
			chmod +x /usr/sbin/policy-rc.d
			policy_added=1
		fi
		local rc=0
		{ apt-get update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } || rc=$?
		# removed on failure too: it would keep every later package's daemon down
		if [[ -n $policy_added ]]; then rm -f /usr/sbin/policy-rc.d; fi
		((rc == 0)) || die "apt-get install ${need[*]} failed (exit $rc)"
	fi
	# PostgreSQL (the names suite's psql tests, the replica suites) has its
	# own script, the one source of truth for installing and running it.
	bash "$(dirname "${BASH_SOURCE[0]}")/postgres.sh" install
	ensure_cgroups
}

# ensure_cgroups mounts the cgroup hierarchies when nothing did (a machine
# without an init system that does it); runc cannot start a container
# without them. A no-op when any cgroup (v1 or v2) file system is mounted.
ensure_cgroups() {
	if ! awk '$3 == "cgroup" || $3 == "cgroup2" {found=1} END {exit !found}' /proc/mounts; then
		echo "no cgroup file system mounted: running cgroupfs-mount" >&2
		cgroupfs-mount >&2
	fi
}

# docker_cli prints the docker client to drive the private dockerd: the one
# Debian's docker.io ships (same version as dockerd), not whatever comes first
# on PATH (a newer CLI defaults to buildx and other API levels).
# MESHINIT_DOCKER_CLI overrides.
docker_cli() {
	if [[ -n ${MESHINIT_DOCKER_CLI:-} ]]; then
		echo "$MESHINIT_DOCKER_CLI"
		return
	fi
	local p
	p=$(dpkg-query -L docker.io 2>/dev/null | grep -E '/bin/docker$' | head -1 || true)
	if [[ -n $p && -x $p ]]; then
		echo "$p"
	elif [[ -x /usr/bin/docker ]]; then
		echo /usr/bin/docker
	else
		command -v docker || die "no docker CLI (run: $0 install)"
	fi
}

dockerd_args() {
	local dir=$1 d=$1/docker
	local bip=(--bip "$DOCKER_BIP")
	printf '%s\n' \
		dockerd \
		--config-file "$d/daemon.json" \
		--data-root "$d/root" \
		--exec-root "$d/exec" \
		--pidfile "$d/dockerd.pid" \
		--host "unix://$d/docker.sock" \
		"${bip[@]}" \
		--default-address-pool "$DOCKER_POOL" \
		--iptables=false \
		--ip-forward=false \
		--ip-masq=false \
		--ip6tables=false \
		--userland-proxy=false \
		--dns 127.0.0.1 \
		--storage-driver overlay2 \
		--exec-opt native.cgroupdriver=cgroupfs \
		--cgroup-parent "/$(cgroup_parent "$dir")" \
		--log-level warn
}

# note_run_dirs remembers which of the host-wide directories our daemons
# create anyway were absent before: the runc shim keeps its sockets in
# /run/containerd/s whatever the config says, dockerd makes /run/docker/plugins,
# and "ip netns add" makes /run/netns (a mount point). Cleanup removes them
# again, when empty, only if they were ours.
RUN_DIRS=(/run/containerd /run/docker /run/netns)
note_run_dirs() {
	local d
	for d in "${RUN_DIRS[@]}"; do
		[[ -d $d ]] || touch "$1/created-$(basename "$d")"
	done
}

# prepare_docker makes the dirs and our own daemon.json, so the host's
# /etc/docker/daemon.json never changes our daemon. Its one setting keeps
# dockerd 20.10 from writing its trust key to /etc/docker/key.json (the
# setting has no command-line flag).
prepare_docker() {
	local d=$1/docker
	mkdir -p "$d/root" "$d/exec"
	note_run_dirs "$1"
	ensure_cgroups
	[[ -e $d/daemon.json ]] || printf '{"deprecated-key-path": "%s"}\n' "$d/key.json" >"$d/daemon.json"
	# dockerd --bip configures docker0; another dockerd's docker0 would be
	# reconfigured under its feet. Refuse instead.
	if ip link show docker0 >/dev/null 2>&1; then
		if ! ip -4 addr show docker0 | grep -q " ${DOCKER_BIP%/*}/"; then
			die "docker0 exists with another address (another dockerd?); stop it first: our dockerd needs docker0 at $DOCKER_BIP"
		fi
	else
		touch "$d/created-docker0"
	fi
}

containerd_config() {
	local c=$1/containerd
	mkdir -p "$c/root" "$c/state" "$c/opt"
	note_run_dirs "$1"
	ensure_cgroups
	cat >"$c/config.toml" <<EOF
# private containerd of $1 (written by scripts/runtimes.sh)
version = 2
root = "$c/root"
state = "$c/state"
# No CRI: the suites drive containerd through its own API, and CRI would
# bring CNI and its own cgroups.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[debug]
  address = ""
  level = "warn"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
EOF
	echo "$c/config.toml"
}

bridge_up() {
	local br
	br=$(ctr_bridge "$1")
	if ! ip link show "$br" >/dev/null 2>&1; then
		ip link add name "$br" type bridge
		ip addr add "$CTR_BRIDGE_ADDR" dev "$br"
		ip link set "$br" up
	fi
	echo "$br $CTR_BRIDGE_ADDR"
}

# kill_leftovers ends what a killed test or daemon may have left running:
# runtime processes (daemons, shims: they outlive their containerd by design)
# whose command line names DIR, then the container processes in DIR's
# cgroups. Both sets are ours by construction; each is killed by pid.
kill_leftovers() {
	local dir=$1 cg pid p
	cg=/sys/fs/cgroup/pids/$(cgroup_parent "$dir")
	[[ -d $cg ]] || cg=/sys/fs/cgroup/$(cgroup_parent "$dir") # cgroup v2
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
		case $(basename "$(readlink "$p/exe" 2>/dev/null)") in
		containerd | containerd-shim* | dockerd | runc | docker-proxy) ;;
		*) continue ;;
		esac
		if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir/"; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	if [[ -d $cg ]]; then
		for _ in $(seq 50); do
			local left=
			while read -r f; do
				while read -r pid; do
					[[ -n $pid ]] || continue
					left=1
					kill -KILL "$pid" 2>/dev/null || true
				done <"$f"
			done < <(find "$cg" -name cgroup.procs)
			[[ -z $left ]] && break
			sleep 0.1
		done
	fi
}

# cleanup runs after the daemons are gone (or were killed): nothing of DIR
# may survive it.
cleanup() {
	local dir=$1 d sock
	[[ -n $dir && -d $dir ]] || return 0
	kill_leftovers "$dir"
	# mounts (overlays, netns bind mounts, shm) below DIR, deepest first
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
	# network namespaces and bridges of the containerd suite
	for ns in /run/netns/"$(netns_prefix "$dir")"*; do
		[[ -e $ns ]] && ip netns delete "$(basename "$ns")" 2>/dev/null || true
	done
	ip link delete "$(ctr_bridge "$dir")" 2>/dev/null || true
	for d in "${RUN_DIRS[@]}"; do
		[[ -e $dir/created-$(basename "$d") && -d $d ]] || continue
		if [[ $d == /run/netns ]]; then
			# others may have namespaces there by now: only an empty one goes
			[[ -z $(ls -A "$d") ]] || continue
			if mountpoint -q "$d"; then umount "$d" 2>/dev/null || true; fi
		fi
		if [[ $d == /run/containerd ]]; then
			# a shim killed by us leaves its socket: remove sockets that no
			# process has bound any more (absent from /proc/net/unix)
			for sock in /run/containerd/s/*; do
				[[ -S $sock ]] || continue
				grep -qF " $sock" /proc/net/unix || rm -f "$sock"
			done
		fi
		find "$d" -depth -type d -empty -delete 2>/dev/null || true
	done
	if [[ -e $dir/docker/created-docker0 ]]; then
		ip link delete docker0 2>/dev/null || true
	fi
	# cgroups: v1 has one tree per controller; rmdir leaves first
	local cg
	cg=$(cgroup_parent "$dir")
	for root in /sys/fs/cgroup /sys/fs/cgroup/*; do
		[[ -d $root/$cg ]] || continue
		find "$root/$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	rm -rf "$dir"
}

# wait_ready waits until a daemon answers on its socket (at most ~60 s).
wait_ready() {
	local what=$1
	shift
	for _ in $(seq 600); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	die "$what did not become ready in 60s"
}

stop_pidfile() {
	local pidfile=$1 pid
	[[ -s $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	echo "runtimes.sh: $pidfile: pid $pid still alive after 30s, killing" >&2
	kill -KILL "$pid" 2>/dev/null || true
}

start() {
	local what=${1:-all} dir
	dir=$(mktemp -d /tmp/mirt-XXXXXX)
	if [[ $what == docker || $what == all ]]; then
		prepare_docker "$dir"
		mapfile -t args < <(dockerd_args "$dir")
		setsid "${args[@]}" >"$dir/docker/dockerd.log" 2>&1 </dev/null &
		wait_ready dockerd "$(docker_cli)" --host "unix://$dir/docker/docker.sock" version
		echo "export DOCKER_HOST=unix://$dir/docker/docker.sock"
	fi
	if [[ $what == containerd || $what == all ]]; then
		local cfg
		cfg=$(containerd_config "$dir")
		bridge_up "$dir" >/dev/null
		setsid containerd --config "$cfg" >"$dir/containerd/containerd.log" 2>&1 </dev/null &
		echo $! >"$dir/containerd/containerd.pid"
		wait_ready containerd ctr --address "$dir/containerd/containerd.sock" version
		echo "export CONTAINERD_ADDRESS=$dir/containerd/containerd.sock"
	fi
	echo "# docker CLI: $(docker_cli); stop with: $0 stop $dir"
}

stop() {
	local dir=${1:?usage: $0 stop DIR}
	[[ $dir == /tmp/mirt-* ]] || die "not a runtimes dir: $dir"
	stop_pidfile "$dir/docker/dockerd.pid"
	stop_pidfile "$dir/containerd/containerd.pid"
	cleanup "$dir"
}

cmd=${1:-install}
shift || true
case "$cmd" in
install) install ;;
start) start "$@" ;;
stop) stop "$@" ;;
dockerd-args)
	prepare_docker "${1:?DIR}"
	dockerd_args "$1"
	;;
containerd-config) containerd_config "${1:?DIR}" ;;
bridge-up) bridge_up "${1:?DIR}" ;;
cleanup) cleanup "${1:?DIR}" ;;
docker-cli) docker_cli ;;
names)
	echo "cgroup_parent=/$(cgroup_parent "${1:?DIR}")"
	echo "bridge=$(ctr_bridge "$1")"
	echo "bridge_addr=$CTR_BRIDGE_ADDR"
	echo "netns_prefix=$(netns_prefix "$1")"
	;;
*)
	echo "usage: $0 install | start [docker|containerd|all] | stop DIR" >&2
	exit 2
	;;
esac
