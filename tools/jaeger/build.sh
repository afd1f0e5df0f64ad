#!/usr/bin/env bash
# Builds, once, Jaeger (v2: the all-in-one `jaeger` binary, an OpenTelemetry Collector distribution with an OTLP
# receiver, in-memory storage, the query API and the UI) from its Go module, pinned in go.mod beside this script.
# tests/support/jaeger.py starts it for the trace export test; `ghostpay dev --jaeger` starts it for a person.
#
# Where the binary comes from, first match wins:
#   1. `jaeger` on $PATH: used as it is, nothing is built;
#   2. the cache ${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ghostpay}/jaeger/<version>/bin/jaeger,
#      valid while its stamp matches go.mod and go.sum;
#   3. otherwise `go build` of the `tool` package of go.mod (github.com/jaegertracing/jaeger/cmd/jaeger) into it.
#
# To move on: `go get -tool github.com/jaegertracing/jaeger/cmd/jaeger@vX.Y.Z` here (a version the module proxy
# serves), then `go mod tidy`.
#
# Usage: build.sh [--rebuild] [--no-system]
#   --rebuild     build into the cache even if it is valid
#   --no-system   ignore `jaeger` on $PATH
# Progress and timings go to stderr; stdout gets one line: `jaeger=/absolute/path`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

rebuild=0
use_system=1
tmp=""
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    --no-system) use_system=0 ;;
    -h|--help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'jaeger: %s\n' "$*" >&2; }

version="$(awk '$1 == "github.com/jaegertracing/jaeger" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
cache_root="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/jaeger"
bin_dir="$cache_root/${version#v}/bin"
stamp_file="$bin_dir/.stamp"

# Jaeger's release build stamps its version the same way (scripts/makefiles/BuildInfo.mk); `jaeger version` shows it.
ldflags="-s -w -X github.com/jaegertracing/jaeger/internal/version.latestVersion=$version"

wanted_stamp() { { cat "$here/go.mod" "$here/go.sum"; echo "$ldflags"; } | sha256sum | cut -d' ' -f1; }
cache_valid() { [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$(wanted_stamp)" && -x "$bin_dir/jaeger" ]]; }

timed() {  # timed LABEL COMMAND...: runs it and logs how long it took
  local label="$1" start end
  shift
  log "$label ..."
  start=$(date +%s)
  "$@"
  end=$(date +%s)
  log "$label took $((end - start))s"
}

build() {
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  log "$(go version); building Jaeger $version into $bin_dir"
  tmp="$cache_root/.build.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  (
    cd "$here"
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly"
    timed "downloading modules (go list -deps tool)" go list -deps tool >/dev/null
    timed "go build jaeger" go build -trimpath -ldflags="$ldflags" -o "$tmp/" tool
  )
  [[ -x "$tmp/jaeger" ]] || { log "expected jaeger in the build output, missing"; exit 1; }
  mkdir -p "$bin_dir"
  mv -f "$tmp/jaeger" "$bin_dir/jaeger"
  wanted_stamp >"$stamp_file"
  log "installed into $bin_dir ($(du -sh "$bin_dir" | cut -f1))"
}

main() {
  local found
  found="$(command -v jaeger || true)"
  if [[ $rebuild -eq 0 && $use_system -eq 1 && -n "$found" && "$found" == /* ]]; then
    log "using $found from \$PATH"
    printf 'jaeger=%s\n' "$found"
    return
  fi
  mkdir -p "$cache_root"
  exec 9>"$cache_root/.lock"  # one build at a time (pytest, the CLI and make may race on a cold cache)
  flock 9
  if [[ $rebuild -eq 0 ]] && cache_valid; then
    log "cached in $bin_dir"
  else
    timed "build" build
  fi
  printf 'jaeger=%s\n' "$bin_dir/jaeger"
}

main
