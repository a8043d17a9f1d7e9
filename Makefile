# Two commands matter: `make run` and `make test`. Both install what is missing (and
# skip what is done), so they work on a fresh Debian machine as root.

SHELL := /bin/bash
# Python may cache the project's own compiled modules (a machine that sets this variable
# makes each of the suite's hundreds of processes compile them again).
unexport PYTHONDONTWRITEBYTECODE
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := debootstrap sip-tester espeak-ng sox ca-certificates ghostscript libtiff-tools \
	chromium chromium-driver postgresql kamailio poppler-utils
APT_STAMP := /var/lib/ivr-apt-$(shell echo $(APT_PACKAGES) | md5sum | cut -c1-8)

.PHONY: run test drill setup apt venv pbx bench lint clean cluster cluster-status cluster-down

# make run turns the test phone on (a softphone account, printed at start); production
# (ivr run, ivr pbx up) leaves it off unless IVR_TEST_PHONE=1.
run: setup
	IVR_TEST_PHONE=$${IVR_TEST_PHONE:-1} $(BIN)/ivr run

# Calls spend most of their time listening to prompts, so several workers (each with its
# own Asterisk instance and controller) share 2 cores well. Beside two CPU hogs 8 workers
# took 807-870 s where 7 took 892-947 s (more of the suite runnable, more of the machine).
TEST_WORKERS ?= 8
BENCH_ARGS ?=

test: setup
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

# Drills too slow for `make test` (docs/cluster.md): PostgreSQL restarted during 20 calls
# through a 2-node cluster, the counts printed. CI runs it after `make test`.
drill: setup
	IVR_DRILLS=1 $(BIN)/python -m pytest -q -s -n 0 tests/cluster/test_cluster_load.py

# The benchmarks are modules of one package (tests/perf, sharing tests/perf/benchlib.py).
bench: setup
	$(BIN)/python -m tests.perf.bench_agi $(BENCH_ARGS)
	$(BIN)/python -m tests.perf.bench_rules
	$(BIN)/python -m tests.perf.bench_call_writes
	$(BIN)/python -m tests.perf.bench_capacity $(BENCH_ARGS)
	$(BIN)/python -m tests.perf.bench_callers
	$(BIN)/python -m tests.perf.bench_bridge $(BENCH_ARGS)
	$(BIN)/python -m tests.perf.bench_night $(BENCH_ARGS)
	$(BIN)/python -m tests.perf.bench_transcribe
	$(BIN)/python -m tests.perf.bench_cluster

setup: apt venv pbx

# A local cluster (docs/cluster.md): Kamailio on 127.0.0.1:5060 in front of CLUSTER_NODES
# Asterisk+controller nodes on 127.0.0.2, .3, ... and one PostgreSQL. Its folder must be
# reachable by the postgres user: as root the default would be under /root (closed to
# others), so root's cluster lives in /var/lib/ivr-cluster.
CLUSTER_NODES ?= 2
CLUSTER_ARGS ?=
export IVR_CLUSTER_DIR ?= $(if $(filter 0,$(shell id -u)),/var/lib/ivr-cluster,)

cluster: setup
	$(BIN)/ivr cluster up --nodes $(CLUSTER_NODES) $(CLUSTER_ARGS)

cluster-status: venv
	$(BIN)/ivr cluster status

cluster-down: venv
	$(BIN)/ivr cluster down

# Debian packages: debootstrap builds the Asterisk root, sipp plays callers and phones,
# espeak-ng and sox make prompts, chromium and its driver test the portal in a real
# browser; postgresql (the shared database of several nodes, and the tests' second
# database) and kamailio (the SIP entry in front of them) make a cluster. Only run apt
# when something is missing.
apt: $(APT_STAMP)
$(APT_STAMP):
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "==> installing Debian packages:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q $$missing; \
	fi; \
	if ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv; fi
	@touch $@

# uv installs the same packages as pip, in parallel and from its own cache: a fresh
# clone's set-up took 37 s with pip (80 s beside two CPU hogs), 19 s with uv. Unlike pip,
# uv writes no bytecode unless asked: without it every process the suite starts compiled
# the libraries it imports (3.5 s of CPU instead of 1.5 s for a controller's imports).
venv: $(STAMP)
$(STAMP): pyproject.toml
	@echo "==> Python virtualenv with the package and its test tools"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv
	$(BIN)/uv pip install -q --compile-bytecode --python $(BIN)/python -e '.[test,demo]'
	@touch $@

# Builds the Debian sid root with Asterisk once (about a minute), then reuses it.
pbx: venv
	$(BIN)/python -c 'from ivr.config import from_env; from ivr.pbx.root import ensure_root; r = ensure_root(from_env().cache_dir); print("==> Asterisk", r.version, "at", r.path)'

# The same checks as tests/unit/test_lint.py; fails on any finding.
lint: venv
	$(BIN)/python -m ruff check ivr tests
	$(BIN)/python -m mypy ivr

clean:
	rm -rf $(VENV) .pytest_cache
