#!/usr/bin/env bash
# `make demo-images`: the Helm chart's demo images (demo.enabled), built with Docker Engine on the base made here
# (tools/debian/base.sh): ghostpay/demo-postgres:15 (Debian's postgresql-15), ghostpay/demo-redis:7 (Debian's
# redis-server 7.0), ghostpay/demo-openbao:<version> (OpenBao's `bao` from tools/openbao/build.sh, for
# demo.vault.enabled) and ghostpay/demo-prometheus:<version> (Debian's `prometheus` from tools/prometheus/install.sh,
# the server the analysis tests run, for demo.prometheus.enabled). Cached: an image is rebuilt only when its build
# context (its directory here, plus the binary it copies) or the base image changed (the image carries that recipe's hash as a label). Prints one line per step with its elapsed time;
# the image names on standard output.   tools/demo-images/build.sh [--no-cache]
set -euo pipefail
cd "$(dirname "$0")/../.."
no_cache=()
[[ ${1:-} == --no-cache ]] && no_cache=(--no-cache)
start=$SECONDS
say() { echo "demo-images: $* ($((SECONDS - start)) s)" >&2; }

tools/docker/ensure.sh >&2
# One image build at a time on this machine: test workers build concurrently, and this script, its base image
# (tools/debian/base.sh) and its build directory are not made to be run twice at once.
exec 9>/tmp/ghostpay-image-build.lock
flock 9
base=$(tools/debian/base.sh)
base_id=$(docker image inspect --format '{{.Id}}' "$base")
mkdir -p build/demo-images
bao=$(tools/openbao/build.sh --no-system | sed -n 's/^bao=//p')  # OpenBao itself, never a `vault` on $PATH
bao_version=$("$bao" version | awk '{print $2}')
tools/prometheus/install.sh >&2  # Debian's package, once; a `prometheus` already on PATH is used as is
prometheus=$(command -v prometheus)
prometheus_version=$("$prometheus" --version 2>&1 | awk 'NR == 1 {print $3}')  # 2.42.0+ds: Debian's source suffix
prometheus_version=${prometheus_version%%+*}
for spec in postgres:15 redis:7 "openbao:${bao_version#v}" "prometheus:$prometheus_version"; do
  name=${spec%%:*}
  image="ghostpay/demo-$spec"
  dir=build/demo-images/$name-context  # the build context: the directory here, and the binary it copies
  rm -rf "$dir"
  cp -r "tools/demo-images/$name" "$dir"
  [[ $name == openbao ]] && cp "$bao" "$dir/bao"
  if [[ $name == prometheus ]]; then
    cp "$prometheus" "$dir/prometheus"
    mkdir -p "$dir/web"  # the web UI's static files where Debian's package keeps them (the API needs none)
    [[ -d /usr/share/prometheus/web ]] && cp -r /usr/share/prometheus/web/. "$dir/web/"
  fi
  recipe=$({ tar -C "$dir" -c --sort=name --mtime=@0 --owner=0 --group=0 . ; echo "$base_id"; } | sha256sum | cut -c1-16)
  if [[ ${#no_cache[@]} == 0 && "$(docker image inspect --format '{{index .Config.Labels "io.ghostpay.recipe"}}' "$image" 2>/dev/null)" == "$recipe" ]]; then
    say "$image is cached"
  else
    previous=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
    say "docker build $image (log: build/demo-images/$name.log)"
    if ! docker build "${no_cache[@]}" -f "$dir/Containerfile" -t "$image" --build-arg "BASE=$base" \
      --label "io.ghostpay.recipe=$recipe" "$dir" >"build/demo-images/$name.log" 2>&1; then
      tail -30 "build/demo-images/$name.log" >&2
      say "docker build $image failed"
      exit 1
    fi
    # The image the tag pointed at before, unless a container or another tag still uses it (rmi refuses).
    if [[ -n $previous && $previous != "$(docker image inspect --format '{{.Id}}' "$image")" ]]; then
      docker rmi "$previous" >/dev/null 2>&1 || true
    fi
    say "built $image ($(docker image inspect --format '{{.Size}}' "$image" | numfmt --to=si --suffix=B))"
  fi
  echo "$image"
done
