# Makefile fragment: `include tools/controlplane/controlplane.mk` adds `make controlplane`,
# which builds (first run only; then cached under ~/.cache/ghostpay/controlplane/) the local
# Kubernetes control plane used by `ghostpay cluster up` and the operator tests.
CONTROLPLANE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: controlplane
controlplane:
	bash $(CONTROLPLANE_DIR)/build.sh
