# Two commands do everything on a fresh machine: `make dev` runs the product, `make test` passes the tests.
VENV    ?= .venv
# The venv's interpreter: the system's /usr/bin/python3 when it is 3.11 or later and can make a venv (on Debian
# bookworm, the one the container image ships: built with profile-guided and link-time optimization, libpython
# linked in), else python3 from PATH. pyenv's default build (no PGO or LTO, libpython a shared library) spends
# about a tenth more CPU on every charge (README, "The charge path's cost"). A venv made before keeps its
# interpreter: `make clean install` remakes it (`PYTHON=python3` for the one on PATH).
ifeq ($(origin PYTHON),undefined)
PYTHON  := $(shell /usr/bin/python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
             && echo /usr/bin/python3 || echo python3)
endif
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
DURATION ?= 30s
# `make test`'s pytest workers (pytest-xdist): the suite mostly waits on servers, so workers overlap the waits. The
# kind cluster with the Docker builds stays on one worker, the local control plane on one (tests/conftest.py).
TEST_WORKERS ?= 3

.PHONY: install dev test fast check lint typecheck imports openapi argocd-cm dashboards bench bench-framework bench-keys bench-operator load clean docker image demo-images wrk chaos

include tools/controlplane/controlplane.mk
include tools/openbao/openbao.mk
include tools/prometheus/prometheus.mk
include tools/kind/kind.mk
include tools/helm/helm.mk
include tools/actionlint/actionlint.mk
include tools/jaeger/jaeger.mk

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

dev: install
	$(VENV)/bin/ghostpay dev

test: install check controlplane openbao prometheus jaeger docker kind helm actionlint wrk
	$(VENV)/bin/pytest -n $(TEST_WORKERS) --dist loadgroup

check: lint typecheck imports

# The inner loop: lint, types, import contracts, and every test that needs neither a control plane, OpenBao,
# Prometheus, Jaeger nor Docker, and spawns no extra processes (`-m "not infra"` alone adds the process-spawning ones).
fast: check
	$(VENV)/bin/pytest -q -m "not infra and not slow" -p no:cacheprovider

# Docker Engine installed and running (the image tests build and run the image; the build is cached).
docker:
	tools/docker/ensure.sh

# The container image ghostpay/ghostpay:<version>, built offline on a Debian base made here (see README).
image:
	PYTHON=$(PYTHON) tools/image/build.sh

# The Helm chart's demo images: PostgreSQL, Redis and Prometheus from Debian's packages, OpenBao, on the same base.
demo-images:
	tools/demo-images/build.sh

# The disruption suite (tests/kind/test_chaos.py) on the kind cluster, which it leaves running: releases, rollbacks,
# operator failover, a drained worker, PostgreSQL and Redis restarts under real traffic; prints one table and
# writes it to build/chaos/report.json.
chaos: install docker kind helm
	GHOSTPAY_TEST_KIND_DIR=$${GHOSTPAY_TEST_KIND_DIR:-$(CURDIR)/.ghostpay/kind} \
	  $(VENV)/bin/pytest tests/kind/test_chaos.py -p no:cacheprovider -s -q

lint: install
	$(VENV)/bin/ruff check services operator devtools tests bench load

typecheck: install
	$(VENV)/bin/mypy

imports: install
	$(VENV)/bin/lint-imports

openapi: install
	$(VENV)/bin/ghostpay openapi --out services/openapi.yaml

# The argocd-cm snippet, from argocd/resource_customizations (tests/argocd/test_cm_snippet.py compares them).
argocd-cm: install
	$(VENV)/bin/python -m ghostpay_devtools.argocd

# The Grafana dashboards in monitoring/grafana, from ghostpay_devtools/dashboards.py (a test compares them).
dashboards: install
	$(VENV)/bin/python -m ghostpay_devtools.dashboards

# The load generator of `make bench` (Debian's wrk), installed if missing.
wrk:
	tools/wrk/ensure.sh

bench: install wrk
	$(PY) -m bench.charge_bench $(BENCH_ARGS)

bench-framework: install
	$(PY) -m bench.framework_cost

bench-keys: install openbao
	$(PY) -m bench.keys_bench

bench-operator: install controlplane
	$(PY) -m bench.operator_bench

load: install
	$(PY) -m load.run --duration $(DURATION)

clean:
	rm -rf $(VENV) .ghostpay .mypy_cache .ruff_cache .pytest_cache
