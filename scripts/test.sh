#!/usr/bin/env bash
# Runs every check and test jobmatch has: formatting, lints, unit tests, the store
# contract, embedding parity and the end-to-end scenarios against a real nats-server,
# a real SMTP server and the real model. Installs what they need first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

eval "$(scripts/setup.sh --env)"

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
