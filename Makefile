# srdd — `make run` starts one node; `make test` runs every test.
PYTHON      ?= python3
GO          ?= go
VENV        := .venv
VPY         := $(VENV)/bin/python
STAMP       := $(VENV)/.srdd-requirements
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GO_SOURCES  := $(shell find . -name '*.go' -not -path './.venv/*' -not -path './data/*') go.mod go.sum
PY_SOURCES  := $(wildcard sparkbridge/python/srdd_interpreter/*.py)
PYCLIENT    := $(VENV)/.srdd-pyclient

.PHONY: all build run test test-fast test-go test-go-node test-go-pkgs test-fuzz fuzz test-python test-rest pyclient test-api fuzz-api check-chromium screenshots test-airflow test-connect test-livy test-edges test-faults test-fault-pause test-fault-copies lint venv check-java check-prometheus check-redis check-deploy bench bench-durable bench-edges bench-scala bench-connect clean

all: build

build: bin/srdd

bin/srdd: $(GO_SOURCES) $(PY_SOURCES)
	$(GO) build -ldflags "-X main.version=$$(git describe --always --dirty 2>/dev/null || echo dev) -X github.com/srdd/srdd/metrics.revision=$$(git rev-parse HEAD 2>/dev/null || echo unknown)" -o bin/srdd ./cmd/srdd

# make-venv is the recipe of a virtualenv's stamp file: the virtualenv in
# the stamp's directory, with the requirements files the stamp depends on.
define make-venv
$(PYTHON) -m venv $(@D)
$(@D)/bin/python -m pip install -q --disable-pip-version-check $(addprefix -r ,$^)
touch $@
endef

# The virtualenv is rebuilt only when the pinned requirements change.
$(STAMP): sparkbridge/python/requirements.txt tests/api/requirements.txt tests/redis/requirements.txt
	$(make-venv)

venv: $(STAMP)

# The Python client (client/python) and its pinned dependencies, installed
# into the venv (reinstalled when its sources change); the build backend is
# pinned too (--no-build-isolation).
$(PYCLIENT): $(STAMP) client/python/requirements.txt client/python/pyproject.toml $(wildcard client/python/src/srdd/*)
	$(VPY) -m pip install -q --disable-pip-version-check -r client/python/requirements.txt
	$(VPY) -m pip install -q --disable-pip-version-check --no-build-isolation --force-reinstall --no-deps ./client/python
	touch $@

pyclient: $(PYCLIENT)

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

# Debian's redis-tools: redis-cli, a real client of the Redis port in the
# Go tests (node/redis_test.go).
check-redis:
	@command -v redis-cli >/dev/null || { \
	  echo "installing redis-tools (redis-cli, for the Redis port's tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-tools; }

# Debian's chromium, for the web console's browser test
# (node/ui_browser_test.go, driven by chromedp) and make screenshots.
check-chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing chromium (the web console's browser test)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# The console's pages as PNGs in docs/ (docs/ui-*.png), from the browser
# test against a real node, with a statement of each output kind.
screenshots: check-java check-chromium venv
	SRDD_TEST_PYTHON=$(abspath $(VPY)) SRDD_UI_SCREENSHOTS=$(abspath docs) $(GO) test -count=1 -run '^TestConsoleInABrowser$$' ./node/

# The edge tests (cmd/srdd/edges_e2e_test.go) run 3 fresh nodes and
# clusters and 2 kills here; test-edges runs the full 20 and 5.
# Livy parity's slow end-to-end runs (a batch on a killed node, across a
# restart, a Scala jar; Scala sessions and pylivy's batches against
# bin/srdd) are a CI step of their own, `make test-livy`, which keeps
# `make test` under 20 minutes on 2 cores.
LIVY_GO_TESTS := TestBatchOnKilledNode|TestBatchRestartedNode|TestBatchJar
LIVY_PY_TESTS := client/livy/test_livy_scala.py client/livy/test_livy_batches.py

# The JVMs that tests start (PySpark's drivers, through the nodes' and the
# tests' own environment) run with the C1 compiler only and the serial
# GC: a PySpark start then costs about a third less CPU on this 2-core
# machine (benchmarks/jvm-start-cpu.sh measures it). Tests only: `make run`,
# the benchmarks and a deployed node keep the JVM's defaults.
TEST_JVM := JAVA_TOOL_OPTIONS="$(strip $(JAVA_TOOL_OPTIONS) -XX:TieredStopAtLevel=1 -XX:+UseSerialGC)"

# The fast tier (README, "Tests"): every Go test that does not need Spark,
# sessions on the fake interpreter (sparkbridge/bridgetest); tests that
# call spark(t) and the deploy check are skipped. It needs no Java and
# starts no JVM: JAVA_HOME is unset and java is hidden from PATH.
test-fast: check-redis
	SRDD_TEST_TIER=fast scripts/without-java.sh \
	  $(GO) test -race -count=1 -timeout 10m ./...

# Both tiers: the fast tier's tests on the fake interpreter, the Spark
# tier's (spark(t)) on shared PySpark nodes where they can. The node
# package, the long pole, runs in a `go test` of its own so that
# `make test` starts it first (go test ./... reached it last).
GO_TEST_ENV := $(TEST_JVM) SRDD_TEST_PYTHON=$(abspath $(VPY)) SRDD_EDGE_ROUNDS=3 SRDD_KILL_ROUNDS=2
GO_TEST     := $(GO) test -race -count=1 -timeout 25m -skip '^($(LIVY_GO_TESTS))$$'
TEST_SETUP  := check-java check-prometheus check-chromium check-redis venv

test-go: test-go-node test-go-pkgs

test-go-node: $(TEST_SETUP)
	$(GO_TEST_ENV) $(GO_TEST) ./node/

test-go-pkgs: $(TEST_SETUP)
	$(GO_TEST_ENV) $(GO_TEST) $$($(GO) list ./... | grep -v '/node$$')

# The interpreter's own tests, then real Livy clients, srdd's own
# Python client (client/python/tests) and redis-py (tests/redis) against
# bin/srdd.
test-python: check-java venv build $(PYCLIENT)
	$(TEST_JVM) $(VPY) -m pytest -q sparkbridge/python/tests client/livy $(addprefix --ignore=,$(LIVY_PY_TESTS))
	$(TEST_JVM) $(VPY) -m pytest -q client/python/tests
	$(TEST_JVM) $(VPY) -m pytest -q -p no:cacheprovider tests/redis

# Airflow's Livy provider against bin/srdd, in its own virtualenv (Airflow
# is a large install, so it is not part of `make test`; .ci/run runs it
# after). The node runs the project's Python, the test Airflow's.
AIRFLOW_VENV  := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.srdd-requirements
$(AIRFLOW_STAMP): client/airflow/requirements.txt
	$(make-venv)

test-livy: check-java venv build
	$(TEST_JVM) SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -timeout 30m -run '^($(LIVY_GO_TESTS))$$' ./node/
	$(TEST_JVM) $(VPY) -m pytest -q $(LIVY_PY_TESTS)

test-airflow: check-java venv build $(AIRFLOW_STAMP)
	$(TEST_JVM) SRDD_NODE_PYTHON=$(abspath $(VPY)) $(AIRFLOW_VENV)/bin/python -m pytest -q -p no:cacheprovider client/airflow

# pyspark's Spark Connect client (pyspark-client, pinned in
# tests/connect/requirements.txt) against bin/srdd's --connect-addr, in
# its own virtualenv: it conflicts with the full pyspark in .venv. The
# node runs the project's Python, the tests this one. Then Spark's Go
# client, spark-connect-go (pinned in tests/connectgo/go.mod, a module of
# its own so that its Arrow stays out of srdd's go.mod). Not part of
# `make test`; .ci/run runs it after test-airflow.
CONNECT_VENV  := .venv-connect
CONNECT_STAMP := $(CONNECT_VENV)/.srdd-requirements
$(CONNECT_STAMP): tests/connect/requirements.txt
	$(make-venv)

test-connect: check-java venv build $(CONNECT_STAMP)
	$(TEST_JVM) SRDD_NODE_PYTHON=$(abspath $(VPY)) $(CONNECT_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/connect
	cd tests/connectgo && $(GO) vet ./ && $(TEST_JVM) SRDD_BIN=$(abspath bin/srdd) SRDD_NODE_PYTHON=$(abspath $(VPY)) $(GO) test -count=1 -timeout 10m ./

# The registry's apply is total (docs/ARCHITECTURE.md invariant 10):
# FuzzApply over decode + apply, from its seed corpus
# (cluster/testdata/fuzz/FuzzApply), 30 s in `make test`, 10 min in
# `make fuzz`. An input that fails is written to that directory. Then
# the Redis port's RESP reader (FuzzRESP: no panic, nothing over its
# bounds), as long.
FUZZTIME ?= 30s
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzApply$$' -fuzztime $(FUZZTIME) ./cluster/
	$(GO) test -run '^$$' -fuzz '^FuzzRESP$$' -fuzztime $(FUZZTIME) ./redisapi/

fuzz:
	$(MAKE) test-fuzz FUZZTIME=10m

# The API contract (docs/ARCHITECTURE.md, "The API contract"):
# schemathesis against a real node with auth on, from its own
# /openapi.json; 0 server errors, 0 schema or status violations.
# ~2 min in `make test` (API_EXAMPLES=10, fixed seed); `make fuzz-api`
# runs 100 examples per operation with a random seed.
API_EXAMPLES ?= 10
FUZZ_API_EXAMPLES ?= 100
test-api: check-java venv build
	$(TEST_JVM) scripts/api-contract.sh $(abspath $(VPY)) $(API_EXAMPLES)

fuzz-api: check-java venv build
	SEED=$$(date +%s) scripts/api-contract.sh $(abspath $(VPY)) $(FUZZ_API_EXAMPLES)

# The Go tests' long pole is the node package (whole nodes; the Spark
# tier's on real PySpark, the rest on the fake interpreter): it starts
# first, beside the other Go packages and, third, the fuzz run, the
# Python suites and the API contract, one at a time. The set-up (Java,
# Prometheus, Chromium, redis-cli, the venv, bin/srdd) runs before, once,
# so no two installs run at the same time.
# `make test-fast` is the inner loop: the Go tests that need no Spark.
test: lint
	$(MAKE) --no-print-directory $(TEST_SETUP) build
	$(MAKE) --no-print-directory -j3 --output-sync=target test-go-node test-go-pkgs test-rest

test-rest: test-fuzz test-python test-api
	@:

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
# after /readyz, and 5 kills each of the leader and of a follower, on real
# PySpark (SRDD_TEST_TIER=robust; make test runs 3 and 2 on the fake).
test-edges: check-java venv build
	$(TEST_JVM) SRDD_TEST_TIER=robust SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -timeout 45m \
	  -run 'TestFreshNodeTakesFirstCallsAfterReadyz|TestFreshClusterTakesFirstCallsAfterReadyz|TestCreatesThroughSurvivorsAfter' ./cmd/srdd

# The fault tests (issue 22; a CI step of its own, build tag `faults`,
# so `make test` does not run them): bad set-ups and failing starts on
# real bin/srdd processes: the README's secure start in a fresh checkout
# after `make run`, a restart on a Python without pyspark (preflight exit
# 2; past it, backed-off starts and bounded session records), dead
# sessions pruned, Ctrl-C during a traceback, srdd doctor, full disks, a
# driver out of memory and a paused owner (~5 min).
test-faults: check-java venv build
	$(TEST_JVM) SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -tags faults -timeout 35m -run '^TestFault' ./cmd/srdd

# The lost owner (issue 24) alone: 5 kills of the owner's machine with its
# data dir, copies taking over, porcupine over each round.
test-fault-copies: check-java venv build
	$(TEST_JVM) SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -tags faults -timeout 30m -run '^TestFaultCopiesSurviveOwnerLoss$$' ./cmd/srdd

# The paused owner (issue 22, part 5) alone: SIGSTOP and SIGCONT of an
# owner under load, porcupine over the reads through the resumed node.
test-fault-pause: check-java venv build
	$(TEST_JVM) SRDD_TEST_PYTHON=$(abspath $(VPY)) $(GO) test -race -count=1 -tags faults -timeout 10m -run '^TestFaultPausedOwner$$' ./cmd/srdd

# The edges (issue 11): process start to /readyz (1 and 3 nodes), and the
# time from kill -9 of the leader or a follower to the first successful
# create through a survivor; writes benchmarks/EDGES.md (~10 min).
bench-edges: check-java venv build
	scripts/bench-edges.sh

# Spark Connect through srdd (benchmarks/CONNECT.md; issue 27): the
# session's own Spark Connect port directly against through srdd, 30
# alternating pairs in-process (BenchmarkConnectProxyCost), then
# pyspark-client through srdd against Spark's own server: time to first
# result and toPandas() rows/s (~4 min).
bench-connect: check-java venv build $(CONNECT_STAMP)
	mkdir -p benchmarks/out
	SRDD_TEST_PYTHON=$(abspath $(VPY)) SRDD_BENCH_PAIRS=$(abspath benchmarks/out/connect-pairs.txt) \
	  $(GO) test -count=1 -run '^$$' -bench '^BenchmarkConnectProxyCost$$' -benchtime 30x ./node/ > benchmarks/out/connect-proxy.txt
	$(CONNECT_VENV)/bin/python benchmarks/connect_bench.py --srdd bin/srdd --node-python $(VPY) \
	  --proxy-bench benchmarks/out/connect-proxy.txt --proxy-pairs benchmarks/out/connect-pairs.txt

# Scala statement latency: cold REPL start and warm `1 + 1` (benchmarks/SCALA.md).
bench-scala: check-java venv build
	$(VPY) benchmarks/scala_latency.py

clean:
	rm -rf bin
