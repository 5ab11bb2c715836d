#!/usr/bin/env bash
# Fails on any gofmt difference or go vet finding.
set -euo pipefail
cd "$(dirname "$0")/.."
# Go files git knows or would add (tracked and new, not ignored), that exist:
# a file deleted in the work tree but not yet in the index is no error.
files=()
while IFS= read -r f; do
	if [[ -e $f ]]; then files+=("$f"); fi
done < <(git ls-files --cached --others --exclude-standard -- '*.go' 2>/dev/null ||
	find . -name '*.go' -not -path './bin/*' -not -path './.git/*')
unformatted=
((${#files[@]} == 0)) || unformatted=$(gofmt -l "${files[@]}")
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files need formatting (run gofmt -w):" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
echo "lint: gofmt and go vet clean"
