# meshinit: every target is a thin wrapper over a script in scripts/, so CI,
# the README and a developer's shell run exactly the same thing.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
export VERSION
LDFLAGS := -s -w -X main.version=$(VERSION)
# urfave_cli_no_docs drops urfave/cli's man-page generator (blackfriday): its
# package init costs every meshinit start ~0.5 ms and 200 KiB (bench/initbench).
TAGS := urfave_cli_no_docs
export TAGS
BIN := bin

.PHONY: all build test unit bench demo image lint clean

all: build

## build: static binaries into bin/ (CGO_ENABLED=0)
build:
	CGO_ENABLED=0 go build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/meshinit ./cmd/meshcoord

## test: everything CI runs: lint, race-enabled units, fuzz seeds, integration suites (as root)
test:
	bash scripts/test.sh

## unit: only the fast unit tests (no root, no daemons): every package
## outside integration/, as make test's unit step runs them
unit:
	go test -race $$(go list ./... | grep -v /integration/)

## bench: benchmarks with ratios against same-run baselines (never fails on speed)
bench: build
	bash scripts/bench.sh

## demo: coordinator + meshinit nodes on an embedded SQLite file, with a timeline
demo: build
	bash scripts/demo.sh

## image: container images FROM scratch (needs a docker daemon; scripts/runtimes.sh starts one)
image: build
	bash scripts/image.sh

## lint: gofmt and go vet must be silent
lint:
	bash scripts/lint.sh

clean:
	rm -rf $(BIN)
