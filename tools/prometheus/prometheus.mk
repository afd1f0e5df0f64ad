# Makefile fragment: `include tools/prometheus/prometheus.mk` adds `make prometheus`, which installs (first run
# only) Debian's `prometheus` package, the server tests/operator/support/prometheus.py starts on 127.0.0.1 to check
# the release analysis. A `prometheus` already on PATH is used instead. See install.sh.
PROMETHEUS_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: prometheus
prometheus:
	bash $(PROMETHEUS_DIR)/install.sh
