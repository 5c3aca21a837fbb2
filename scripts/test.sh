#!/usr/bin/env bash
# Runs every check and test jobmatch has: formatting, lints, unit tests, the store
# contract, embedding parity and the end-to-end scenarios against a real nats-server,
# a real SMTP server and the real model, and the operator against a real kube-apiserver.
# Installs what they need first (scripts/setup.sh, scripts/k8s-test-cluster.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/setup.sh --env)"
# The operator tests' Kubernetes control plane (built once, about 7 min, then cached).
eval "$(scripts/k8s-test-cluster.sh --env)"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== build (binaries and tests, once)"
# The end-to-end tests run the jobmatch binary as separate processes.
cargo build --workspace --bins --quiet
cargo test --workspace --no-run --quiet
echo "== cargo test"
cargo test --workspace
