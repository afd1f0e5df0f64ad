# Makefile fragment: `include tools/kind/kind.mk` adds `make kind`, which builds (first run only; then cached
# under ~/.cache/ghostpay/kind/ and in Docker image labels) kind and, where kindest/node cannot be pulled, the
# node image made here; `ghostpay cluster up --kind` does the same on demand.
KIND_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: kind
kind:
	bash $(KIND_DIR)/binaries.sh >/dev/null
	bash $(KIND_DIR)/node-image.sh >/dev/null
