#!/usr/bin/env bash
# Checks that the GPU build compiles, on a machine without a GPU: the CUDA compiler from
# PyPI (scripts/cuda-toolkit.sh), then `cargo check --features cuda`, whose build scripts
# compile candle's CUDA kernels with nvcc (PTX and the static MoE/GGUF library) for
# CUDA_COMPUTE_CAP (default 80). Linking, the CUDA image and running on a GPU are
# scripts/images.sh --cuda and scripts/gpu-check.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
eval "$(scripts/cuda-toolkit.sh --env)"
# A check of what compiles, not of what runs: nvcc's device optimizers off (cicc and
# ptxas at -O0) make the kernels compile in a third of the time; with both cores for
# the kernel builder it is 3 min in all instead of 16 on a 2-core machine. The same
# sources, headers and compiler; images and gpu-check.sh build them optimized.
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:--Xcicc -O0 -Xptxas -O0}"
started=$(date +%s)
# The shared target dir and the same selection as test.sh's clippy (the whole workspace,
# every target), so that features resolve alike and every dependency but candle's is
# already checked; the feature adds units beside the CPU build's and invalidates nothing.
cargo check --quiet --locked --workspace --all-targets --features jobmatch-workers/cuda
echo "cuda-check: cargo check --features cuda passed in $(( $(date +%s) - started )) s"
