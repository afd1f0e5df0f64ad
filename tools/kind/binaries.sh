#!/usr/bin/env bash
# Builds, once per version, the binaries a kind cluster needs here that the control plane build
# (tools/controlplane/build.sh) does not make:
#   kind                          sigs.k8s.io/kind, module in tools/kind/kind/
#   kubelet, kubeadm, kube-proxy  k8s.io/kubernetes, module in tools/kind/node/ (same versions as the control plane)
#   coredns                       github.com/coredns/coredns with kubeadm's plugins only, module in tools/kind/coredns/
#   crictl                        sigs.k8s.io/cri-tools, module in tools/kind/crictl/ (kind asks it which images a node has)
#   pause                         the sandbox process, Kubernetes' own build/pause/linux/pause.c, static (gcc)
# into ${GHOSTPAY_CACHE_DIR:-~/.cache/ghostpay}/kind/<piece>-<version>/, each valid while its stamp (a hash of
# its module files) matches. Progress on stderr, one line per step with the elapsed time; stdout gets one
# `name=/absolute/path` line per binary.
#   binaries.sh          all of them (the node image made here needs them)
#   binaries.sh kind     only kind (enough for a cluster on kindest/node)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${GHOSTPAY_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ghostpay}/kind"
start=$SECONDS
say() { echo "kind-binaries: $* ($((SECONDS - start)) s)" >&2; }

module_version() {  # module_version DIR MODULE: the version DIR/go.mod requires of MODULE
  awk -v m="$2" '{ sub(/^require[ \t]+/, "") } $1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}
stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

export CGO_ENABLED=0 GOFLAGS="-buildvcs=false -p=2 -mod=readonly"
mkdir -p "$cache"
exec 9>"$cache/.lock"  # one build at a time (make, the CLI and pytest may race on a cold cache)
flock 9

# build_piece NAME DIR STAMP COMMAND...: runs COMMAND (which writes into $out) unless DIR holds STAMP.
build_piece() {
  local name="$1" dir="$2" stamp="$3"
  shift 3
  if [[ "$(cat "$dir/.stamp" 2>/dev/null)" == "$stamp" ]]; then
    say "$name cached in $dir"
    return
  fi
  say "building $name into $dir"
  out="$dir.build.$$"
  rm -rf "$out" && mkdir -p "$out"
  "$@"
  rm -rf "$dir" && mv "$out" "$dir"
  echo "$stamp" >"$dir/.stamp"
  say "built $name ($(du -sh "$dir" | cut -f1))"
}

kind_version=$(module_version "$here/kind" sigs.k8s.io/kind)
k8s_version=$(module_version "$here/node" k8s.io/kubernetes)
coredns_version=$(module_version "$here/coredns" github.com/coredns/coredns)
kind_dir="$cache/kind-$kind_version"
node_dir="$cache/node-$k8s_version"
coredns_dir="$cache/coredns-$coredns_version"
crictl_version=$(module_version "$here/crictl" sigs.k8s.io/cri-tools)
crictl_dir="$cache/crictl-$crictl_version"
pause_dir="$cache/pause-$k8s_version"

build_kind() { (cd "$here/kind" && go build -trimpath -ldflags="-s -w" -o "$out/kind" sigs.k8s.io/kind); }

build_node() {
  # Version stamps as Kubernetes' release build sets them (as tools/controlplane/build.sh does): kubeadm
  # compares its own version with the cluster's, and an unstamped build says v0.0.0-master.
  local minor="${k8s_version#v1.}" ldflags="-s -w" pkg
  minor="${minor%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  (cd "$here/node" && go build -trimpath -ldflags="$ldflags" -o "$out/" tool)
}

build_coredns() {
  (cd "$here/coredns" && go build -trimpath \
    -ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version" -o "$out/coredns" .)
}

build_crictl() {
  (cd "$here/crictl" && go build -trimpath \
    -ldflags="-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version" -o "$out/crictl" \
    sigs.k8s.io/cri-tools/cmd/crictl)
}

build_pause() {
  local src
  src="$(cd "$here/node" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
  [[ -f "$src" ]] || (cd "$here/node" && go mod download k8s.io/kubernetes)
  gcc -Os -static -DVERSION="$k8s_version-ghostpay" -o "$out/pause" "$src"
  strip "$out/pause"
}

build_piece "kind $kind_version" "$kind_dir" "$(stamp_of "$here/kind/go.mod" "$here/kind/go.sum")" build_kind
echo "kind=$kind_dir/kind"
[[ "${1:-}" != kind ]] || exit 0

build_piece "kubelet, kubeadm, kube-proxy $k8s_version" "$node_dir" \
  "$(stamp_of "$here/node/go.mod" "$here/node/go.sum")" build_node
build_piece "coredns $coredns_version" "$coredns_dir" \
  "$(stamp_of "$here/coredns/go.mod" "$here/coredns/go.sum" "$here/coredns/main.go")" build_coredns
build_piece "crictl $crictl_version" "$crictl_dir" \
  "$(stamp_of "$here/crictl/go.mod" "$here/crictl/go.sum")" build_crictl
build_piece "pause" "$pause_dir" "$(stamp_of "$here/node/go.mod")" build_pause

for name in kubelet kubeadm kube-proxy; do echo "$name=$node_dir/$name"; done
echo "coredns=$coredns_dir/coredns"
echo "crictl=$crictl_dir/crictl"
echo "pause=$pause_dir/pause"
