# docker fleet: see README.md.
SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# EXTRA_LDFLAGS (before the version, which the fault build suffixes): the e2e's builds of other releases (test/e2e/upgrade_test.go) stamp an older API or an agent that cannot start.
LDFLAGS := -s -w $(EXTRA_LDFLAGS) -X github.com/docker-fleet/fleet/shared/version.Version=$(VERSION)
GO ?= go
export CGO_ENABLED := 0
# Where the docker CLI looks for plugins of the current user.
PLUGIN_DIR ?= $(or $(DOCKER_CONFIG),$(if $(HOME),$(HOME)/.docker,/root/.docker))/cli-plugins
SIM_HOSTS ?= 3
PLUGIN_TAR := packaging/dist/fleet-agent-plugin.tar.gz
GOFILES := $(shell find . -name '*.go' -not -path './.git/*')

.PHONY: all build install test unit e2e e2e-engines servers faults fuzz bench bench-scale demo sim-up sim-down lint clean

all: build

bin/fleet-agent: $(GOFILES) go.mod go.sum
	$(GO) build -tags nosystemd -trimpath -ldflags '$(LDFLAGS)' -o $@ ./daemonplugin

$(PLUGIN_TAR): bin/fleet-agent manifest/config.json packaging/build-plugin.sh
	packaging/build-plugin.sh bin/fleet-agent bin/plugin $@

bin/docker-fleet: $(PLUGIN_TAR) $(GOFILES) go.mod go.sum
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cliplugin

bin/workload: $(wildcard test/workload/*.go)
	$(GO) build -trimpath -o $@ ./test/workload

## build: the docker-fleet CLI plugin (with the agent plugin inside) and the agent plugin package
build: bin/docker-fleet bin/workload

## install: put docker-fleet where the docker CLI finds plugins
install: build
	install -D -m 0755 bin/docker-fleet $(PLUGIN_DIR)/docker-fleet

## lint: gofmt, go vet and golangci-lint (.golangci.yml: the layering, a cap on
## function complexity); golangci-lint is pinned in tools/go.mod and built by go tool
lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./test/...
	$(GO) vet -tags servers ./test/...
	$(GO) vet -tags e2e,faults ./test/... ./daemonplugin/...
	$(GO) tool -modfile=tools/go.mod golangci-lint run ./...

## unit: unit tests
unit:
	$(GO) test ./...

## fuzz: each fuzz target for FUZZTIME (the unit tests already run their seeds)
FUZZTIME ?= 15s
fuzz:
	$(GO) test ./shared/cpuset -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./shared/spec -run '^$$' -fuzz FuzzParseMemory -fuzztime $(FUZZTIME)
	$(GO) test ./shared/spec -run '^$$' -fuzz FuzzParsePortVolume -fuzztime $(FUZZTIME)
	$(GO) test ./cliplugin/internal/specfile -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(GO) test ./daemonplugin/metrics -run '^$$' -fuzz FuzzParsers -fuzztime $(FUZZTIME)
	$(GO) test ./daemonplugin/migrate -run '^$$' -fuzz FuzzExtract -fuzztime $(FUZZTIME)
	$(GO) test ./daemonplugin/migrate -run '^$$' -fuzz FuzzReceiveHeader -fuzztime $(FUZZTIME)
	$(GO) test ./daemonplugin/agent -run '^$$' -fuzz FuzzRequestBodies -fuzztime $(FUZZTIME)

## sim-up / sim-down: the multi-host simulator (SIM_HOSTS hosts, default 3)
sim-up: bin/workload
	SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh up $(SIM_HOSTS)

sim-down:
	test/sim/sim.sh down

## e2e: end-to-end tests on a fresh simulator
e2e: install bin/workload
	SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh reset $(SIM_HOSTS)
	SIM_WORKLOAD=$(CURDIR)/bin/workload $(GO) test -tags e2e -count=1 -timeout 40m -v ./test/e2e/

## e2e-engines: the end-to-end tests of a mixed fleet (test/e2e/engines_test.go):
## Docker 28 (sid), the machine's 20.10, 26.1 (trixie) and 28, side by side
E2E_ENGINES := 28,20.10,26,28
e2e-engines: install bin/workload
	SIM_ENGINES=$(E2E_ENGINES) SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh reset 4
	FLEET_E2E_ENGINES=$(E2E_ENGINES) $(GO) test -tags e2e -count=1 -timeout 20m -v -run '^TestEngines' ./test/e2e/

## servers: real servers built from Debian's packages (test/servers/images.sh, no
## registry), each migrated live under its own load client, on a fresh simulator
servers: install bin/workload
	test/servers/images.sh build
	SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh reset $(SIM_HOSTS)
	test/servers/images.sh load h1 h2 h3
	$(GO) test -tags servers -count=1 -timeout 30m -v ./test/servers/

## faults: the migration protocol's fault matrix (test/e2e/faults_test.go) on a fresh
## simulator, with an agent built with its fault points (-tags faults, never in a
## release): installs that CLI; the next build packs the real agent again
faults: bin/workload
	$(GO) build -tags nosystemd,faults -trimpath -ldflags '$(LDFLAGS)-faults' -o bin/faults/fleet-agent ./daemonplugin
	packaging/build-plugin.sh bin/faults/fleet-agent bin/faults/plugin $(PLUGIN_TAR)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)-faults' -o bin/faults/docker-fleet ./cliplugin
	rm -f $(PLUGIN_TAR)
	install -D -m 0755 bin/faults/docker-fleet $(PLUGIN_DIR)/docker-fleet
	SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh reset $(SIM_HOSTS)
	$(GO) test -tags e2e,faults -count=1 -timeout 30m -v -run '^TestFaults' ./test/e2e/

## test: everything CI runs
test: lint unit e2e servers e2e-engines faults

## bench: migration downtime and total, docker fleet against the docker-native path,
## and describe/create through the relay against direct (BENCH_ONLY=transport, migrate or guard);
## and what the guard adds to an engine request
BENCH_SIZES ?= 64,256,1024
BENCH_ONLY ?=
bench: install sim-up
	docker --context h1 fleet init --worker h2 --worker h3 >/dev/null
	$(GO) run ./test/bench -sizes $(BENCH_SIZES) -only '$(BENCH_ONLY)'

## bench-scale: one fleet grown to 3, 6 and 12 simulated hosts: init per node added,
## a create of 100 small replicas (and the CLI's own CPU time in it), describe,
## rebalance --dry-run, a migration while they run; leaves 12 hosts up
bench-scale: install
	SIM_WORKLOAD=$(CURDIR)/bin/workload test/sim/sim.sh reset 12
	$(GO) run ./test/bench -only scale -nodes 3,6,12

## demo: the main job on the local simulator
demo: install sim-up
	test/demo.sh

clean:
	rm -rf bin $(PLUGIN_TAR)
