#!/usr/bin/env bash
# Installs the Prometheus server that tests/operator/support/prometheus.py starts (Debian's `prometheus` package).
# Idempotent: a `prometheus` already on PATH is used as is. Only the binary is used: the tests start it
# themselves on 127.0.0.1 with a throwaway config and storage, so the package's systemd unit (if the
# machine has systemd at all) is neither needed nor started here; policy-rc.d keeps dpkg from starting it.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
    prometheus --version 2>&1 | head -n 1
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi

# Keep the package's post-install from starting a service (no systemd here; harmless where there is one).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
cleanup() { if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus

prometheus --version 2>&1 | head -n 1
