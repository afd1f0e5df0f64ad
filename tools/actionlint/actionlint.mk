# Makefile fragment: `include tools/actionlint/actionlint.mk` adds `make actionlint`, which builds (first run only;
# then cached under ~/.cache/ghostpay/actionlint/) actionlint from its Go module and installs Debian's shellcheck,
# for the workflow tests in tests/ci/. See build.sh.
ACTIONLINT_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: actionlint
actionlint:
	bash $(ACTIONLINT_DIR)/build.sh >/dev/null
