#!/usr/bin/env bash
# `make image`: the container image ghostpay/ghostpay:<version in pyproject.toml>, built with Docker Engine from
# the Containerfile on a Debian bookworm base made here (tools/debian/base.sh). The image build itself reaches no
# package index: the wheels (binary only, the list derived from pyproject.toml by tools/image/requirements.py) are
# downloaded first into build/image/wheels, cached until that list or the base image changes; Docker's layer
# cache does the rest. Prints one line per step with its elapsed time; the image name last on standard output.
#   PYTHON=python3 tools/image/build.sh [--no-cache] [--wheels-only]
#     --no-cache     download every wheel and build every layer anew
#     --wheels-only  stop once build/image/ holds the wheelhouse and requirements.txt the Containerfile copies
#                    (.github/workflows/image.yaml then builds and pushes with docker/build-push-action)
#   GHOSTPAY_IMAGE_BASE=debian:bookworm   a bookworm image from a registry (pulled) instead of the one made here
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-python3}"
OUT=build/image
CACHE="${GHOSTPAY_CACHE_DIR:-$HOME/.cache/ghostpay}"
no_cache=()
wheels_only=0
for arg in "$@"; do
  case "$arg" in
    --no-cache) no_cache=(--no-cache) ;;
    --wheels-only) wheels_only=1 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
start=$SECONDS
say() { echo "image: $* ($((SECONDS - start)) s)" >&2; }

tools/docker/ensure.sh >&2
# One image build at a time on this machine: test workers build concurrently, and this script, its base image
# (tools/debian/base.sh) and its build directory are not made to be run twice at once.
exec 9>/tmp/ghostpay-image-build.lock
flock 9
if [[ -n ${GHOSTPAY_IMAGE_BASE:-} ]]; then
  base=$GHOSTPAY_IMAGE_BASE
  # Pulled first: its image id is part of the wheelhouse's recipe below.
  docker image inspect "$base" >/dev/null 2>&1 || docker pull -q "$base" >&2
else
  base=$(tools/debian/base.sh)
fi
version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image="ghostpay/ghostpay:$version"
mkdir -p "$OUT"

# The wheelhouse, made by the image's own interpreter (the Containerfile's `venv` stage: Debian bookworm's CPython
# 3.11, glibc 2.36), so wheel tags and environment markers are the image's, not the host's. Its pip trusts what the
# host's does (PIP_CERT, else the host's CA bundle) and may use PIP_INDEX_URL.
"$PYTHON" tools/image/requirements.py >"$OUT/requirements.new"
"$PYTHON" tools/image/requirements.py --build >"$OUT/build-requirements.txt"
recipe=$({ cat "$OUT/requirements.new" "$OUT/build-requirements.txt"; uname -m; docker image inspect --format '{{.Id}}' "$base"; } | sha256sum | cut -c1-16)
if [[ ${#no_cache[@]} == 0 && -d $OUT/wheels && "$(cat "$OUT/wheels.recipe" 2>/dev/null)" == "$recipe" ]]; then
  say "wheels are cached ($(find "$OUT/wheels" -name '*.whl' | wc -l) in $OUT/wheels)"
else
  say "building the venv stage (Debian's python3 and python3-venv)"
  if ! venv=$(docker build -q "${no_cache[@]}" -f Containerfile --target venv --build-arg "BASE=$base" . 2>"$OUT/venv.log"); then
    cat "$OUT/venv.log" >&2
    exit 1
  fi
  rm -rf "$OUT/wheels" "$OUT/wheels.new"
  mkdir -p "$OUT/wheels.new" "$CACHE/image/pip"
  ca="${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}"
  trust=()
  [[ -f $ca ]] && trust=(-v "$(realpath "$ca"):/etc/ghostpay-ca.crt:ro" -e PIP_CERT=/etc/ghostpay-ca.crt)
  say "downloading wheels with the image's python3"
  # --only-binary: nothing is compiled in the image build, so a dependency without a wheel fails here, loudly.
  docker run --rm --user "$(id -u):$(id -g)" -e HOME=/tmp -e PIP_CACHE_DIR=/pip-cache -e PIP_INDEX_URL \
    -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=120 "${trust[@]}" \
    -v "$PWD/$OUT:/out" -v "$CACHE/image/pip:/pip-cache" "$venv" \
    /opt/ghostpay/bin/pip download -q --only-binary=:all: --dest /out/wheels.new \
    -r /out/requirements.new -r /out/build-requirements.txt
  mv "$OUT/wheels.new" "$OUT/wheels"
  echo "$recipe" >"$OUT/wheels.recipe"
  say "downloaded $(find "$OUT/wheels" -name '*.whl' | wc -l) wheels ($(du -sh "$OUT/wheels" | cut -f1))"
fi
mv "$OUT/requirements.new" "$OUT/requirements.txt"
if [[ $wheels_only == 1 ]]; then
  say "the build context is ready ($OUT/requirements.txt, $OUT/wheels; base $base)"
  echo "$OUT"
  exit 0
fi

revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
created=$(git log -1 --format=%cI 2>/dev/null || echo unknown)  # the commit's time: a rebuild changes nothing
previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
say "docker build -f Containerfile -t $image (log: $OUT/build.log)"
if ! docker build "${no_cache[@]}" -f Containerfile -t "$image" \
  --build-arg "BASE=$base" --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$created" . >"$OUT/build.log" 2>&1; then
  tail -30 "$OUT/build.log" >&2
  say "docker build failed"
  exit 1
fi
# The image this tag pointed at before, unless a container or another tag still uses it (then rmi refuses).
if [[ -n $previous && $previous != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
  docker rmi "$previous" >/dev/null 2>&1 && say "removed the previous $image"
fi
say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | numfmt --to=si --suffix=B))"
echo "$image"
