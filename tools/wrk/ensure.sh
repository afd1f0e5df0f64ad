#!/usr/bin/env bash
# wrk, the compiled HTTP load generator `make bench` drives the charge path with: Debian's package, installed
# here if it is missing (as tools/docker/ensure.sh installs Docker). Idempotent; prints one line.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then
  echo "wrk: $(command -v wrk)"
  exit 0
fi
echo "wrk: installing Debian's wrk"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q wrk >/dev/null
echo "wrk: installed $(command -v wrk)"
