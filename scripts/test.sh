#!/usr/bin/env bash
# Runs every check and test jobmatch has: formatting, lints, unit tests, the store
# contract, embedding parity and the end-to-end scenarios against a real nats-server,
# a real SMTP server and the real model, the operator against a real kube-apiserver,
# and the whole system in pods on a real node (kubelet, containerd) from the images
# built here. Installs what they need first (scripts/setup.sh,
# scripts/k8s-test-cluster.sh, scripts/cuda-toolkit.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/setup.sh --env)"
# The Kubernetes binaries and the node's runtime (built once, about 10 min, then cached).
eval "$(scripts/k8s-test-cluster.sh --env)"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build (binaries and tests, once)"
# The end-to-end tests run the jobmatch binary as separate processes.
cargo build --workspace --bins --quiet
cargo test --workspace --no-run --quiet
echo "== images (from the test build; scripts/images.sh builds release images by default)"
scripts/images.sh --profile dev
export JOBMATCH_IMAGES_DIR="$PWD/.cache/images"
echo "== cargo test"
cargo test --workspace
echo "== the CUDA build (cargo check --features cuda: its build scripts compile the kernels)"
scripts/cuda-check.sh
