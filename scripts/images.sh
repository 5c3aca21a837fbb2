#!/usr/bin/env bash
# Builds jobmatch's images from images/*.Dockerfile with Debian's buildah: no Docker
# daemon, no registry. The binaries are built here with cargo; images/rootfs.sh lays out
# each image's files, and buildah builds the unchanged Dockerfile with that layout as
# the build context `build`, which stands in for the Dockerfile's build stage (so the
# `FROM rust` base is never pulled). Storage is private (vfs, under .cache/images).
#
# Each image is written as an OCI archive, .cache/images/NAME.tar (or under
# $JOBMATCH_IMAGES_DIR), named
# docker.io/jobmatch/NAME:TAG (what the chart's defaults name), ready for
# `ctr -n k8s.io images import` or `skopeo copy oci-archive:... docker://REGISTRY/...`.
#
#   scripts/images.sh [--profile release|dev] [--tag TAG] [--cuda] [NAME...]
#
#   NAME        operator, worker, worker-cuda (default: operator and worker; --cuda adds
#               worker-cuda, which needs scripts/cuda-toolkit.sh's toolkit)
#   --profile   cargo profile of the binaries (default release; the tests use dev, which
#               reuses the test build)
#   --tag       image tag (default: the workspace version)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT="${JOBMATCH_IMAGES_DIR:-$ROOT/.cache/images}"
PROFILE=release
TAG=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
NAMES=()
CUDA=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --cuda) CUDA=1; shift ;;
    operator|worker|worker-cuda) NAMES+=("$1"); shift ;;
    *) echo "usage: $0 [--profile release|dev] [--tag TAG] [--cuda] [operator|worker|worker-cuda ...]" >&2; exit 2 ;;
  esac
done
[ ${#NAMES[@]} -gt 0 ] || NAMES=(operator worker)
if [ "$CUDA" = 1 ] && [[ ! " ${NAMES[*]} " =~ " worker-cuda " ]]; then NAMES+=(worker-cuda); fi
log() { echo "images: $*" >&2; }

command -v buildah >/dev/null || {
  log "installing buildah from Debian"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends buildah >&2
}
eval "$(scripts/setup.sh --env)"
target_dir() { if [ "$PROFILE" = dev ]; then echo "$ROOT/target/debug"; else echo "$ROOT/target/$PROFILE"; fi; }
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD 2>/dev/null; then REVISION="$REVISION-dirty"; fi
SOURCE=$(git remote get-url origin 2>/dev/null || echo "https://github.com/jobmatch/jobmatch")

# Both CPU binaries in one build of the workspace: building one package alone resolves
# its features apart from the workspace's and compiles the dependencies again (minutes;
# with --profile dev this is the test build itself, so nothing is compiled).
if [[ " ${NAMES[*]} " =~ " operator " || " ${NAMES[*]} " =~ " worker " ]]; then
  log "building the binaries ($PROFILE)"
  cargo build --quiet --profile "$PROFILE" --locked --workspace --bins
fi
mkdir -p "$OUT/storage" "$OUT/empty-context"
B=(buildah --root "$OUT/storage/root" --runroot "$OUT/storage/run" --storage-driver vfs)

for name in "${NAMES[@]}"; do
  started=$(date +%s)
  stage="$OUT/$name"
  case "$name" in
    operator)
      images/rootfs.sh "$stage/out/rootfs" "$(target_dir)/jobmatch-operator" ;;
    worker)
      images/rootfs.sh "$stage/out/rootfs" "$(target_dir)/jobmatch" --model "$JOBMATCH_MODEL_DIR" ;;
    worker-cuda)
      eval "$(scripts/cuda-toolkit.sh --env --libs)"
      log "building jobmatch with CUDA ($PROFILE, compute capability ${CUDA_COMPUTE_CAP})"
      # Its own target dir: the cuda feature changes candle, so the CPU build stays cached.
      CARGO_TARGET_DIR="$ROOT/target/cuda" cargo build --quiet --profile "$PROFILE" --locked \
        -p jobmatch-workers --bin jobmatch --features cuda
      bin="$ROOT/target/cuda/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/jobmatch"
      images/rootfs.sh "$stage/out/rootfs" "$bin" --model "$JOBMATCH_MODEL_DIR" --libs "$JOBMATCH_CUDA_RUNTIME_LIBS" ;;
  esac
  image="docker.io/jobmatch/$name:$TAG"
  "${B[@]}" bud --quiet --isolation chroot --layers=false \
    --build-context "build=$stage" \
    --build-arg "VERSION=$TAG" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
    -f "$ROOT/images/$name.Dockerfile" -t "$image" "$OUT/empty-context" >/dev/null
  rm -f "$OUT/$name.tar"
  "${B[@]}" push --quiet --disable-compression "$image" "oci-archive:$OUT/$name.tar:$image" >/dev/null
  # Keep the private storage small: the archive is the product.
  "${B[@]}" rmi --force "$image" >/dev/null 2>&1 || true
  size=$(du -m "$OUT/$name.tar" | cut -f1)
  unpacked=$(du -sm "$stage/out/rootfs" | cut -f1)
  log "$image: $OUT/$name.tar, ${size} MB (${unpacked} MB unpacked), $(( $(date +%s) - started )) s"
done
