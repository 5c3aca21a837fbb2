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
cargo test -p jobmatch-e2e --no-run --quiet
echo "== images (from the test build; scripts/images.sh builds release images by default)"
scripts/images.sh --profile dev
export JOBMATCH_IMAGES_DIR="$PWD/.cache/images"
echo "== cargo test"
# The Kubernetes tests (the operator against a kube-apiserver, the whole system on a
# real node) mostly wait on the cluster: they run beside the others, in their own cargo
# process (everything is built above, so neither waits for the other's build lock), and
# their output follows when both are done. CI is about five minutes shorter for it.
k8s_tests=(operator cluster)
other_tests=()
for file in tests/tests/*.rs; do
  name=$(basename "$file" .rs)
  [[ " ${k8s_tests[*]} " == *" $name "* ]] || other_tests+=(--test "$name")
done
k8s_log=$(mktemp)
cargo test -p jobmatch-e2e "${k8s_tests[@]/#/--test=}" >"$k8s_log" 2>&1 &
k8s_pid=$!
others_ok=true
cargo test --workspace --exclude jobmatch-e2e || others_ok=false
cargo test -p jobmatch-e2e --lib --bins "${other_tests[@]}" || others_ok=false
k8s_ok=true
wait "$k8s_pid" || k8s_ok=false
echo "== cargo test (Kubernetes: ${k8s_tests[*]})"
cat "$k8s_log"
rm -f "$k8s_log"
$others_ok && $k8s_ok
echo "== the CUDA build (cargo check --features cuda: its build scripts compile the kernels)"
scripts/cuda-check.sh
