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
# The Kubernetes binaries and the node's runtime (built once, about 10 min cold, then
# cached) build beside cargo: both use every core, but each has long serial stretches
# (linking, single big crates or packages) that the other fills. Its log follows.
k8s_env=$(mktemp)
k8s_log=$(mktemp)
scripts/k8s-test-cluster.sh --env >"$k8s_env" 2>"$k8s_log" &
k8s_build=$!
trap 'kill "$k8s_build" 2>/dev/null || true' EXIT

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build (binaries and tests, once)"
# The end-to-end tests run the jobmatch binary as separate processes.
cargo build --workspace --bins --quiet
cargo test --workspace --no-run --quiet
cargo test -p jobmatch-e2e --no-run --quiet
echo "== the Kubernetes binaries and the node's runtime (built beside cargo)"
wait "$k8s_build" || { cat "$k8s_log"; exit 1; }
cat "$k8s_log"
eval "$(cat "$k8s_env")"
rm -f "$k8s_env" "$k8s_log"
echo "== images (from the test build; scripts/images.sh builds release images by default)"
scripts/images.sh --profile dev
export JOBMATCH_IMAGES_DIR="$PWD/.cache/images"
echo "== cargo test"
# The Kubernetes tests (the operator against a kube-apiserver; the whole system on a
# real node) mostly wait on their clusters: each runs beside the others in its own cargo
# process (everything is built above, so none waits for another's build lock), and
# their output follows when all are done. CI is several minutes shorter for it.
k8s_tests=(operator cluster)
other_tests=()
for file in tests/tests/*.rs; do
  name=$(basename "$file" .rs)
  [[ " ${k8s_tests[*]} " == *" $name "* ]] || other_tests+=(--test "$name")
done
declare -A k8s_pids k8s_logs
for name in "${k8s_tests[@]}"; do
  k8s_logs[$name]=$(mktemp)
  cargo test -p jobmatch-e2e --test "$name" >"${k8s_logs[$name]}" 2>&1 &
  k8s_pids[$name]=$!
done
ok=true
cargo test --workspace --exclude jobmatch-e2e || ok=false
cargo test -p jobmatch-e2e --lib --bins "${other_tests[@]}" || ok=false
for name in "${k8s_tests[@]}"; do
  wait "${k8s_pids[$name]}" || ok=false
  echo "== cargo test (Kubernetes: $name)"
  cat "${k8s_logs[$name]}"
  rm -f "${k8s_logs[$name]}"
done
$ok
echo "== the CUDA build (cargo check --features cuda: its build scripts compile the kernels)"
scripts/cuda-check.sh
