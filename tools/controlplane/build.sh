#!/usr/bin/env bash
# Builds, once, the binaries of the local Kubernetes control plane that `ghostpay cluster up`
# and the operator tests run: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl (from k8s.io/kubernetes and go.etcd.io/etcd/server/v3) and kwok, kwokctl (from
# sigs.k8s.io/kwok). Versions come from go.mod beside this script.
#
# Where the binaries come from, first match wins:
#   1. all seven found in $KUBEBUILDER_ASSETS or on $PATH: used as they are, nothing is built;
#   2. the cache ${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ghostpay}/controlplane/<k8s>-<kwok>/bin,
#      valid while its stamp matches go.mod and go.sum;
#   3. otherwise all seven are built into that cache with one `go build` (shared package cache).
#
# Usage: build.sh [--rebuild] [--no-system]
#   --rebuild     build into the cache even if it is valid
#   --no-system   ignore $KUBEBUILDER_ASSETS and $PATH
# Progress goes to stderr; stdout gets one `name=/absolute/path` line per binary.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl)

rebuild=0
use_system=1
tmp=""
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    --no-system) use_system=0 ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'controlplane: %s\n' "$*" >&2; }

module_version() {  # the version go.mod requires of module $1
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

k8s_version="$(module_version k8s.io/kubernetes)"      # v1.36.3
kwok_version="$(module_version sigs.k8s.io/kwok)"      # v0.8.0
etcd_version="$(module_version go.etcd.io/etcd/server/v3)"
cache_root="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/controlplane"
bin_dir="$cache_root/${k8s_version#v}-${kwok_version#v}/bin"
stamp_file="$bin_dir/.stamp"

print_paths() {  # $1: function that maps a binary name to its path
  local name
  for name in "${binaries[@]}"; do
    printf '%s=%s\n' "$name" "$("$1" "$name")"
  done
}

system_path() {
  local name="$1"
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
    (cd "$KUBEBUILDER_ASSETS" && printf '%s/%s\n' "$(pwd -P)" "$name")
  else
    command -v "$name" || true
  fi
}

cache_path() { printf '%s/%s\n' "$bin_dir" "$1"; }

all_on_system() {
  local name path
  for name in "${binaries[@]}"; do
    path="$(system_path "$name")"
    [[ -n "$path" && -x "$path" && "$path" == /* ]] || return 1
  done
}

wanted_stamp() {
  cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1
}

cache_valid() {
  local name
  [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$(wanted_stamp)" ]] || return 1
  for name in "${binaries[@]}"; do
    [[ -x "$bin_dir/$name" ]] || return 1
  done
}

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
  local minor="${k8s_version#v1.}"
  minor="${minor%%.*}"
  tmp="$cache_root/.build.$$"
  # Version stamps as Kubernetes' own release build sets them: kwokctl reads `--version` of each
  # binary to pick its flags, and an unstamped build reports v0.0.0-master.
  local ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  ldflags+=" -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s_version#v}"

  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  log "$(go version); building Kubernetes $k8s_version, etcd $etcd_version, kwok $kwok_version into $bin_dir"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  (
    cd "$here"
    export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly"
    timed "downloading modules (go list -deps tool)" go list -deps tool >/dev/null
    timed "go build ${binaries[*]}" \
      go build -trimpath -ldflags="$ldflags" -o "$tmp/" tool
  )
  # `go build -o DIR/ tool` names each binary after its package path less any /vN suffix:
  # go.etcd.io/etcd/server/v3 comes out as `server`.
  mv "$tmp/server" "$tmp/etcd"
  local name
  for name in "${binaries[@]}"; do
    [[ -x "$tmp/$name" ]] || { log "expected $name in the build output, missing"; exit 1; }
  done
  mkdir -p "$bin_dir"
  for name in "${binaries[@]}"; do
    mv -f "$tmp/$name" "$bin_dir/$name"
  done
  wanted_stamp >"$stamp_file"
  log "installed into $bin_dir ($(du -sh "$bin_dir" | cut -f1))"
}

main() {
  if [[ $rebuild -eq 0 && $use_system -eq 1 ]] && all_on_system; then
    log "using binaries from \$KUBEBUILDER_ASSETS / \$PATH"
    print_paths system_path
    return
  fi
  mkdir -p "$cache_root"
  # One build at a time per cache (pytest, the CLI and make may race on a cold cache).
  exec 9>"$cache_root/.lock"
  flock 9
  if [[ $rebuild -eq 0 ]] && cache_valid; then
    log "cached in $bin_dir"
  else
    local start end
    start=$(date +%s)
    build
    end=$(date +%s)
    log "built in $((end - start))s"
  fi
  print_paths cache_path
}

main
