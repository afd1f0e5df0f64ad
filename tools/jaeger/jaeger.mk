# Makefile fragment: `include tools/jaeger/jaeger.mk` adds `make jaeger`, which builds (first run only; then cached
# under ~/.cache/ghostpay/jaeger/) Jaeger from its Go module: the OTLP receiver the trace export test sends to, and
# what `ghostpay dev --jaeger` runs for a person to look at traces. See build.sh.
JAEGER_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))

.PHONY: jaeger
jaeger:
	bash $(JAEGER_DIR)/build.sh
