# Makefile fragment: `include tools/openbao/openbao.mk` adds `make openbao`, which installs (first run
# only; then cached under ~/.cache/ghostpay/openbao/) the OpenBao server that tests/support/vault.py starts in
# dev mode. A `bao` or `vault` already on PATH is used instead. See build.sh for where it comes from.
OPENBAO_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: openbao
openbao:
	bash $(OPENBAO_DIR)/build.sh
