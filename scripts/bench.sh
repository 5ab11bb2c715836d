#!/usr/bin/env bash
# make bench: every benchmark program under bench/, in order. Each prints a
# table with ratios against a baseline measured in the same run; none fails
# on speed. Tools they compare against (tini) are installed when missing.
# The access policy is measured by their defaults: coordbench runs each size
# without and with a policy (-policy both), meshbench's throughput part
# includes the policy mode (-dp-modes).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -eq 0 ]]; then bash scripts/runtimes.sh install; fi
for dir in bench/*/; do
	name=$(basename "$dir")
	printf '\n##### %s\n' "$name"
	go run "./bench/$name" || echo "(bench $name failed; continuing)"
done
