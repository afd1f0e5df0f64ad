#!/usr/bin/env bash
# Docker Engine, installed and running, for `make image` and the kind cluster: Debian's docker.io, its daemon
# started here as root if it is not running, with runc behind tools/runc-wrapper (so privileged containers, and
# kind's nodes, work on machines whose capability bounding set lacks CAP_SYS_RESOURCE; elsewhere it changes
# nothing). Idempotent; prints one line per step with its elapsed time.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE="${GHOSTPAY_CACHE_DIR:-$HOME/.cache/ghostpay}"
WRAPPER="$CACHE/bin/ghostpay-runc"
RUNTIME=ghostpay-runc
LOG=/var/log/ghostpay-dockerd.log
start=$SECONDS
say() { echo "docker: $* ($((SECONDS - start)) s)"; }

if docker info >/dev/null 2>&1; then
  say "Docker Engine already running ($(docker info --format '{{.ServerVersion}}, default runtime {{.DefaultRuntime}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  say "installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q docker.io >/dev/null
  say "installed $(dockerd --version)"
fi

source_hash=$(sha256sum tools/runc-wrapper/main.go tools/runc-wrapper/go.mod | sha256sum | cut -c1-16)
if [[ ! -x "$WRAPPER" || "$(cat "$WRAPPER.hash" 2>/dev/null)" != "$source_hash" ]]; then
  mkdir -p "$(dirname "$WRAPPER")"
  (cd tools/runc-wrapper && CGO_ENABLED=0 go build -trimpath -o "$WRAPPER" .)
  echo "$source_hash" >"$WRAPPER.hash"
  say "built the runc wrapper"
fi

say "starting dockerd (log: $LOG)"
# setsid: the daemon outlives this script and the make that called it.
setsid dockerd --add-runtime "$RUNTIME=$WRAPPER" --default-runtime "$RUNTIME" >>"$LOG" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    say "Docker Engine $(docker info --format '{{.ServerVersion}}') running, default runtime $RUNTIME"
    exit 0
  fi
  sleep 1
done
echo "docker: dockerd did not answer within 60 s; the end of $LOG:" >&2
tail -20 "$LOG" >&2
exit 1
