#!/usr/bin/env bash
# Installs what the integration suites need from Debian when missing.
# (The runtime suites extend this with start/stop of private daemons.)
set -euo pipefail
case "${1:-install}" in
install)
	need=()
	for p in docker:docker.io containerd:containerd runc:runc tini:tini unshare:util-linux ip:iproute2; do
		command -v "${p%%:*}" >/dev/null 2>&1 || need+=("${p#*:}")
	done
	# the docker CLI alone is not enough: dockerd must exist too
	command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
	if ((${#need[@]})); then
		echo "installing: ${need[*]}"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
	;;
*)
	echo "usage: $0 install" >&2
	exit 2
	;;
esac
