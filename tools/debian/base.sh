#!/usr/bin/env bash
# The base image every GhostPay image starts from when no registry can be reached: Debian bookworm (minbase) made
# here with debootstrap and turned into an image with `docker import`. Cached: made once per version of this
# script (the image carries its hash as a label). Prints the image name on stdout; progress on stderr.
#   tools/debian/base.sh            -> ghostpay/debian:bookworm
set -euo pipefail
cd "$(dirname "$0")/../.."
IMAGE="ghostpay/debian:bookworm"
MIRROR="${GHOSTPAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
start=$SECONDS
say() { echo "debian-base: $* ($((SECONDS - start)) s)" >&2; }

recipe=$(sha256sum "$0" | cut -c1-16)
if [[ "$(docker image inspect --format '{{index .Config.Labels "io.ghostpay.recipe"}}' "$IMAGE" 2>/dev/null)" == "$recipe" ]]; then
  say "$IMAGE is cached"
  echo "$IMAGE"
  exit 0
fi
command -v debootstrap >/dev/null || { say "installing debootstrap"; apt-get install -y -q debootstrap >/dev/null; }

root=$(mktemp -d /var/tmp/ghostpay-debian.XXXXXX)
trap 'rm -rf "$root"' EXIT
say "debootstrap bookworm (minbase) from $MIRROR"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
# Same sources as the machine (the security archive too), no apt caches or docs in the image.
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
SOURCES
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
say "importing into Docker as $IMAGE"
tar -C "$root" -c . | docker import \
  --change "LABEL io.ghostpay.recipe=$recipe" \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
say "made $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
echo "$IMAGE"
