#!/usr/bin/env bash
# Builds, once, actionlint (the GitHub Actions workflow checker) from its Go module, github.com/rhysd/actionlint at
# the version go.mod beside this script requires, into
# ${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ghostpay}/actionlint/<version>/bin/actionlint, and installs
# Debian's `shellcheck` when it is missing: actionlint runs it on every `run:` block, and skips that check silently
# without it. The cache is valid while its stamp matches go.mod and go.sum. tests/ci/ and `make actionlint` call it.
#
# Usage: build.sh [--rebuild]      (--rebuild: build into the cache even if it is valid)
# Progress goes to stderr, one line per step with the elapsed time; stdout gets two lines:
# `actionlint=/absolute/path` and `shellcheck=/absolute/path`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rebuild=0
case "${1:-}" in
  --rebuild) rebuild=1 ;;
  "") ;;
  -h|--help) sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
esac

start=$SECONDS
log() { printf 'actionlint: %s (%s s)\n' "$*" "$((SECONDS - start))" >&2; }

version="$(awk '$1 == "github.com/rhysd/actionlint" && $2 ~ /^v/ { print $2; exit }' "$here/go.mod")"
cache_root="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/actionlint"
bin_dir="$cache_root/${version#v}/bin"
stamp_file="$bin_dir/.stamp"
wanted_stamp="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)"

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"  # one build at a time (pytest and make may race on a cold cache)
flock 9
if [[ $rebuild -eq 0 && -x "$bin_dir/actionlint" && "$(cat "$stamp_file" 2>/dev/null)" == "$wanted_stamp" ]]; then
  log "actionlint $version is cached in $bin_dir"
else
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  tmp="$cache_root/.build.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "$(go version); building actionlint $version into $bin_dir"
  cd "$here"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly"
  # The release build stamps the version the same way (otherwise `actionlint -version` says "(devel)").
  go build -trimpath -ldflags="-s -w -X github.com/rhysd/actionlint.version=${version#v}" \
    -o "$tmp/actionlint" github.com/rhysd/actionlint/cmd/actionlint
  mkdir -p "$bin_dir"
  mv -f "$tmp/actionlint" "$bin_dir/actionlint"
  echo "$wanted_stamp" >"$stamp_file"
  log "built actionlint $("$bin_dir/actionlint" -version | head -n 1) into $bin_dir"
fi

if ! command -v shellcheck >/dev/null; then
  [[ $(id -u) == 0 ]] && sudo=() || sudo=(sudo)
  log "installing Debian's shellcheck"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -q --no-install-recommends shellcheck >/dev/null
fi
log "$(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
printf 'actionlint=%s\n' "$bin_dir/actionlint"
printf 'shellcheck=%s\n' "$(command -v shellcheck)"
