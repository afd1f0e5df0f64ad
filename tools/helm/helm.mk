# Makefile fragment: `include tools/helm/helm.mk` adds `make helm`, which builds (first run only; then cached
# under ~/.cache/ghostpay/helm/) Helm 3 from its Go module, for the chart in manifests/helm/ghostpay.
HELM_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: helm
helm:
	bash $(HELM_DIR)/build.sh
