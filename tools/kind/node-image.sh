#!/usr/bin/env bash
# The kind node image made here, for machines that cannot pull kindest/node: prints its name
# (ghostpay/kind-node:<Kubernetes version>) on stdout, progress on stderr (one line per step, elapsed time).
#
#   1. the node layer (image/node.Dockerfile): the Debian base (tools/debian/base.sh) with systemd, Debian's
#      containerd, runc and CNI plugins, kind's images/base/files from its module, the runc wrapper as
#      containerd's runc BinaryName, and kubelet, kubeadm, kubectl, crictl;
#   2. the images `kubeadm config images list` names, each made here: the control plane's static binaries
#      (tools/controlplane/build.sh) and coredns and pause (tools/kind/binaries.sh) each `docker import`ed as a
#      one-file root, kube-proxy on the Debian base with iptables and conntrack (image/kube-proxy.Dockerfile).
#      etcd is the control plane's own (see ETCD_TAG: kubeadm names an older patch release), so the cluster
#      config sets kubeadm's etcd imageTag;
#   3. those images imported into the node's containerd (`ctr -n k8s.io images import --no-unpack`: unpacking
#      fails on the nested overlay; the kubelet unpacks them on the node's own volume) and the result committed.
#
# Cached: the image carries a hash of every input as the label io.ghostpay.recipe; a run that finds it
# prints the name at once. Intermediate images (ghostpay/kind-*) stay, tagged, so a rebuild reuses them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
start=$SECONDS
say() { echo "kind-node-image: $* ($((SECONDS - start)) s)" >&2; }
label() { docker image inspect --format "{{index .Config.Labels \"io.ghostpay.recipe\"}}" "$1" 2>/dev/null || true; }

bash "$root/tools/docker/ensure.sh" >&2
cache="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}"
mkdir -p "$cache/kind"
exec 8>"$cache/kind/.node-image.lock"  # one build at a time
flock 8
declare -A bin
while IFS='=' read -r name path; do bin[$name]=$path; done < <(
  bash "$root/tools/controlplane/build.sh" --no-system
  bash "$here/binaries.sh"
)
for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kind kubelet kubeadm kube-proxy coredns crictl pause; do
  [[ -x "${bin[$name]:-}" ]] || { echo "kind-node-image: $name was not built" >&2; exit 1; }
done
base=$(bash "$root/tools/debian/base.sh")
k8s_version=$("${bin[kubeadm]}" version -o short)
etcd_version=$("${bin[etcd]}" --version | awk '/^etcd Version:/ { print $3 }')
ETCD_TAG="$etcd_version-0"
IMAGE="ghostpay/kind-node:$k8s_version"

recipe=$( {
  cat "$0" "$here/binaries.sh" "$here/image/"*.Dockerfile "$root/tools/runc-wrapper/"*
  cat "$here"/*/go.mod "$here"/*/go.sum "$root/tools/controlplane/go.mod" "$root/tools/controlplane/go.sum"
  label "$base"
} | sha256sum | cut -c1-16)
if [[ "$(label "$IMAGE")" == "$recipe" ]]; then
  say "$IMAGE is cached"
  echo "$IMAGE"
  exit 0
fi

previous=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
ctx=$(mktemp -d /var/tmp/ghostpay-kind-node.XXXXXX)
builder=""
trap 'rm -rf "$ctx"; [[ -z "$builder" ]] || docker rm -f "$builder" >/dev/null' EXIT

# imported IMAGE BINARY [ENTRYPOINT]: a one-file image, BINARY at /usr/local/bin (or / with an ENTRYPOINT).
imported() {
  local image="$1" binary="$2" entry="${3:-}" dir
  dir=$(mktemp -d "$ctx/root.XXXXXX")
  if [[ -n "$entry" ]]; then
    install -m 0755 "$binary" "$dir/$entry"
    set -- --change "ENTRYPOINT [\"/$entry\"]"
  else
    install -D -m 0755 "$binary" "$dir/usr/local/bin/$(basename "$binary")"
    set -- --change 'ENV PATH=/usr/local/bin'
  fi
  tar -C "$dir" -c . | docker import "$@" --change "LABEL io.ghostpay.recipe=$recipe" - "$image" >/dev/null
}

pause_image=""
images=()
while read -r image; do
  case "$image" in
    */kube-apiserver:* | */kube-controller-manager:* | */kube-scheduler:*)
      name=${image##*/}
      imported "$image" "${bin[${name%%:*}]}" ;;
    */etcd:*)
      image="${image%:*}:$ETCD_TAG"
      imported "$image" "${bin[etcd]}" ;;
    */coredns:*) imported "$image" "${bin[coredns]}" coredns ;;
    */pause:*) imported "$image" "${bin[pause]}" pause; pause_image=$image ;;
    */kube-proxy:*)
      mkdir -p "$ctx/kube-proxy" && cp "${bin[kube-proxy]}" "$ctx/kube-proxy/"
      # Also tagged under ghostpay/ and kept, so that its apt layer stays in Docker's build cache.
      docker build -q --build-arg "BASE=$base" --label "io.ghostpay.recipe=$recipe" -t "$image" \
        -t "ghostpay/kind-kube-proxy:$k8s_version" -f "$here/image/kube-proxy.Dockerfile" "$ctx/kube-proxy" >/dev/null ;;
    *) echo "kind-node-image: no recipe for $image" >&2; exit 1 ;;
  esac
  images+=("$image")
done < <("${bin[kubeadm]}" config images list --kubernetes-version "$k8s_version")
say "made the cluster's images: ${images[*]}"

kind_files="$(cd "$here/kind" && go list -m -f '{{.Dir}}' sigs.k8s.io/kind)/images/base/files"
cp -r "$kind_files" "$ctx/files" && chmod -R u+w "$ctx/files"
mkdir -p "$ctx/bin"
cp "${bin[kubelet]}" "${bin[kubeadm]}" "${bin[kubectl]}" "${bin[crictl]}" "$ctx/bin/"
# The runc wrapper (tools/docker/ensure.sh builds it only where it starts Docker itself).
(cd "$root/tools/runc-wrapper" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$ctx/ghostpay-runc" .)
say "building the node layer on $base"
docker build -q --build-arg "BASE=$base" --build-arg "PAUSE_IMAGE=$pause_image" -t ghostpay/kind-node-layer:build \
  -f "$here/image/node.Dockerfile" "$ctx" >/dev/null
say "built the node layer"

builder="ghostpay-kind-node-build-$$"
docker save "${images[@]}" -o "$ctx/images.tar"
docker run -d --name "$builder" --privileged --entrypoint sleep ghostpay/kind-node-layer:build infinity >/dev/null
docker cp "$ctx/images.tar" "$builder:/images.tar"
docker exec "$builder" bash -c '
  set -e
  containerd >/tmp/containerd.log 2>&1 &
  pid=$!
  for _ in $(seq 60); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
  ctr -n k8s.io images import --no-unpack --all-platforms /images.tar >/dev/null
  ctr -n k8s.io images ls -q
  kill "$pid" && wait "$pid" || true
  rm -f /images.tar /tmp/containerd.log
  echo "'"$k8s_version"'" >/kind/version' >&2
say "imported the images into the node's containerd"
docker commit \
  --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' --change 'CMD []' \
  --change "LABEL io.ghostpay.recipe=$recipe io.ghostpay.etcd-tag=$ETCD_TAG" \
  "$builder" "$IMAGE" >/dev/null
docker rm -f "$builder" >/dev/null && builder=""
# Untag what was made on the way: the node image keeps the layers; the cluster's images, named as kubeadm
# expects (registry.k8s.io/…), must not stand in Docker for the real ones.
docker rmi ghostpay/kind-node-layer:build "${images[@]}" >/dev/null
# The image this one replaces goes too, unless a cluster's containers still run on it.
[[ -z "$previous" ]] || docker rmi "$previous" >/dev/null 2>&1 || true
say "made $IMAGE ($(docker image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=iec))"
echo "$IMAGE"
