# srdd — `make run` starts one node; `make test` runs every test.
PYTHON      ?= python3
GO          ?= go
VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.srdd-requirements
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GO_SOURCES  := $(shell find . -name '*.go' -not -path './.venv/*' -not -path './data/*') go.mod go.sum
PY_SOURCES  := $(wildcard sparkbridge/python/srdd_interpreter/*.py)

.PHONY: all build run test test-go test-fuzz fuzz test-python test-edges lint venv check-java check-prometheus check-deploy bench bench-durable bench-edges bench-scala clean

all: build

build: bin/srdd

bin/srdd: $(GO_SOURCES) $(PY_SOURCES)
	$(GO) build -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev) -X github.com/srdd/srdd/metrics.revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -o bin/srdd ./cmd/srdd

# The virtualenv is rebuilt only when the pinned requirements change.
$(STAMP): sparkbridge/python/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r sparkbridge/python/requirements.txt
	touch $@

venv: $(STAMP)

check-java:
	@scripts/check-java.sh

run: check-java venv build
	bin/srdd server --python $(VPY) --data-dir data --spark-master 'local[*]'

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.venv/*')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on: $$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Debian's prometheus package: promtool and a real Prometheus for deploy/check.
check-prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  echo "installing prometheus (promtool and the server, for the deploy checks)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq prometheus; }

# The edge tests (cmd/srdd/edges_e2e_test.go) run 3 fresh nodes and
# clusters and 2 kills here; test-edges runs the full 20 and 5.
test-go: check-java check-prometheus venv
	SRDD_TEST_PYTHON=$(abspath $(VPY)) SRDD_EDGE_ROUNDS=3 SRDD_KILL_ROUNDS=2 $(GO) test -race -count=1 -timeout 20m ./...

# The interpreter's own tests, then real Livy clients against bin/srdd.
test-python: check-java venv build
	$(VPY) -m pytest -q sparkbridge/python/tests client/livy

# The registry's apply is total (docs/ARCHITECTURE.md invariant 10):
# FuzzApply over decode + apply, from its seed corpus
# (cluster/testdata/fuzz/FuzzApply), 30 s in `make test`, 10 min in
# `make fuzz`. An input that fails is written to that directory.
FUZZTIME ?= 30s
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./cluster/

fuzz:
	$(MAKE) test-fuzz FUZZTIME=10m

test: lint test-go test-fuzz test-python

# The deploy checks again, verbosely, then PNGs of key dashboard panels
# rendered from a real Prometheus (deploy/grafana/panels.png), ~2 minutes.
check-deploy: check-java check-prometheus venv
	SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -count=1 -v ./deploy/...
	SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) run ./deploy/check/cmd/render-panels --out deploy/grafana/panels.png

# The benchmark suite (never part of `make test`): srdd vs the seed's
# ShareableRdd, Redis and a no-op fasthttp route, with fixed seeds; writes
# benchmarks/RESULTS.md, benchmarks/results/results.json and PNG charts.
# BENCH_ARGS=--quick for a short smoke run. Installs redis-server if missing.
BENCH_ARGS ?=
bench: check-java venv build
	@command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || { \
	  echo "installing redis-server (the benchmark's baseline)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server; }
	$(GO) run ./benchmarks/cmd/bench suite --srdd bin/srdd --python $(VPY) --out benchmarks $(BENCH_ARGS)

# Durable RDDs on a 3-node cluster (issue 6's targets): durable set latency
# and throughput, recovery of a 1M-key RDD after kill -9 of its interpreter,
# and the on-disk Raft log in a 10-minute write soak. Writes
# benchmarks/DURABLE.md and benchmarks/results/durable.json (~20 min).
DURABLE_ARGS ?=
bench-durable: check-java venv build
	$(GO) run ./benchmarks/cmd/bench durable --srdd bin/srdd --python $(VPY) --out benchmarks $(DURABLE_ARGS)

# The edge tests in full (~15 min; a CI step of its own after `make test`):
# 20 fresh nodes and 20 fresh 3-node clusters take their first calls right
# after /readyz, and 5 kills each of the leader and of a follower.
test-edges: check-java venv build
	SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -timeout 45m \
	  -run 'TestFreshNodeTakesFirstCallsAfterReadyz|TestFreshClusterTakesFirstCallsAfterReadyz|TestCreatesThroughSurvivorsAfter' ./cmd/srdd

# The edges (issue 11): process start to /readyz (1 and 3 nodes), and the
# time from kill -9 of the leader or a follower to the first successful
# create through a survivor; writes benchmarks/EDGES.md (~10 min).
bench-edges: check-java venv build
	scripts/bench-edges.sh

# Scala statement latency: cold REPL start and warm `1 + 1` (benchmarks/SCALA.md).
bench-scala: check-java venv build
	$(VPY) benchmarks/scala_latency.py

clean:
	rm -rf bin
