#!/usr/bin/env bash
# Builds, once, Helm 3 (`helm`) from its Go module, helm.sh/helm/v3 at the version go.mod beside this script
# requires, into ${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ghostpay}/helm/<version>/bin/helm. The cache
# is valid while its stamp matches go.mod and go.sum. The chart's tests (tests/helm/) and `make helm` call it.
# Stamped as Helm's own release build stamps it (`helm version` names the release, and the Kubernetes version
# that `helm template` and `helm lint` assume is the one its client-go was built for, not Helm's default 1.20).
#
# Usage: build.sh [--rebuild]      (--rebuild: build into the cache even if it is valid)
# Progress goes to stderr, one line per step with the elapsed time; stdout gets one line: `helm=/absolute/path`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
rebuild=0
case "${1:-}" in
  --rebuild) rebuild=1 ;;
  "") ;;
  -h|--help) sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
esac

start=$SECONDS
log() { printf 'helm: %s (%s s)\n' "$*" "$((SECONDS - start))" >&2; }
module_version() {  # the version go.mod requires of module $1
  awk -v m="$1" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$here/go.mod"
}

helm_version="$(module_version helm.sh/helm/v3)"       # v3.22.0
client_go="$(module_version k8s.io/client-go)"         # v0.Y.Z: Kubernetes 1.Y
cache_root="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/helm"
bin_dir="$cache_root/${helm_version#v}/bin"
stamp_file="$bin_dir/.stamp"
wanted_stamp="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -d' ' -f1)"

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"  # one build at a time (pytest workers and make may race on a cold cache)
flock 9
if [[ $rebuild -eq 0 && -x "$bin_dir/helm" && "$(cat "$stamp_file" 2>/dev/null)" == "$wanted_stamp" ]]; then
  log "helm $helm_version is cached in $bin_dir"
else
  command -v go >/dev/null || { log "go is not installed (need Go >= 1.26)"; exit 1; }
  minor="${client_go#v0.}"
  minor="${minor%%.*}"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  tmp="$cache_root/.build.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  log "$(go version); building helm $helm_version (Kubernetes 1.$minor) into $bin_dir"
  cd "$here"
  export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -p=2 -mod=readonly"
  log "downloading modules (go list -deps tool)"
  go list -deps tool >/dev/null
  log "go build helm.sh/helm/v3/cmd/helm"
  go build -trimpath -ldflags="$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm
  mkdir -p "$bin_dir"
  mv -f "$tmp/helm" "$bin_dir/helm"
  echo "$wanted_stamp" >"$stamp_file"
  log "built $("$bin_dir/helm" version --short) into $bin_dir ($(du -sh "$bin_dir/helm" | cut -f1))"
fi
printf 'helm=%s\n' "$bin_dir/helm"
