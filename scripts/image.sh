#!/usr/bin/env bash
# make image: the container images, FROM scratch, from our static binaries.
#
#   meshinit:VERSION, meshinit:latest          Dockerfile (the binary only)
#   meshcoord:VERSION, meshcoord:latest        images/meshcoord/Dockerfile
#   meshinit-example:latest                    images/example (the pattern for your image)
#   meshinit-testapp:latest                    images/testapp (what the docker suite runs)
#
# Needs a docker daemon: the one in DOCKER_HOST, else the default socket.
# Without one:  eval "$(sudo scripts/runtimes.sh start docker)"
# No registry is used: the classic builder with FROM scratch pulls nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)

# the binaries the images copy (make build made meshinit and meshcoord), with
# make build's tags (the Makefile's TAGS) when built here
export CGO_ENABLED=0
TAGS=${TAGS:-urfave_cli_no_docs}
for b in meshinit meshcoord; do
	[[ -x bin/$b ]] || go build -trimpath -tags "$TAGS" -ldflags "-s -w -X main.version=$VERSION" -o "bin/$b" "./cmd/$b"
done
go build -trimpath -ldflags "-s -w" -o bin/testapp ./images/testapp
go build -trimpath -ldflags "-s -w" -o bin/hello ./images/example/hello

docker=$(bash scripts/runtimes.sh docker-cli)
export DOCKER_BUILDKIT=0
if ! "$docker" version >/dev/null 2>&1; then
	echo "image.sh: no docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-default})." >&2
	echo "Start a private one: eval \"\$(sudo scripts/runtimes.sh start docker)\"" >&2
	exit 1
fi

build() { # tag dockerfile
	echo "building $1"
	"$docker" build --quiet --file "$2" --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" \
		--build-arg MESHINIT_IMAGE=meshinit:latest --tag "$1" . >/dev/null
}
build "meshinit:$VERSION" Dockerfile
"$docker" tag "meshinit:$VERSION" meshinit:latest
build "meshcoord:$VERSION" images/meshcoord/Dockerfile
"$docker" tag "meshcoord:$VERSION" meshcoord:latest
build meshinit-example:latest images/example/Dockerfile
build meshinit-testapp:latest images/testapp/Dockerfile
"$docker" images --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E '^(meshinit|meshcoord)' | sort
