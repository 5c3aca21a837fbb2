#!/usr/bin/env bash
# Installs the CUDA 13.0 toolkit pieces NVIDIA ships on PyPI into one CUDA_HOME-shaped
# folder (default .cache/cuda), enough to compile candle's `cuda` feature (nvcc, cicc,
# the runtime and CCCL headers) without a GPU or a system CUDA. Idempotent.
#
# The `-cu12` wheels (nvidia-cuda-nvcc-cu12) carry only ptxas, not the nvcc driver, so
# this is CUDA 13.0, whose wheels do; it needs an NVIDIA driver of the 580 series or later
# at run time, and GPUs of compute capability 7.5 (Turing) or later.
#
#   scripts/cuda-toolkit.sh [--env] [--libs] [--dir DIR]
#
#   --libs   also the libraries a linked binary loads (cuBLAS, cuBLASLt, cuRAND, NVRTC,
#            about 1 GB) and a link-time stub of the driver (libcuda.so; the real one
#            comes from the GPU node); `cargo check` needs none of them
#   --env    print the environment to build with: eval "$(scripts/cuda-toolkit.sh --env)"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR="$ROOT/.cache/cuda"
PRINT_ENV=0 LIBS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) PRINT_ENV=1; shift ;;
    --libs) LIBS=1; shift ;;
    --dir) DIR=$2; shift 2 ;;
    *) echo "usage: $0 [--env] [--libs] [--dir DIR]" >&2; exit 2 ;;
  esac
done
log() { echo "cuda-toolkit: $*" >&2; }
COMPILER=(nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88
          nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85)
RUNTIME=(nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35 nvidia-cuda-nvrtc==13.0.88)
HOME_DIR="$DIR/toolkit"

# Unpacks wheels' nvidia/cu13/ trees into $HOME_DIR: install PACKAGE==VERSION...
install() {
  local marker="$DIR/.installed-$(echo "$*" | sha256sum | cut -c1-16)" tmp
  [ -f "$marker" ] && return 0
  tmp=$(mktemp -d)
  log "downloading $* from PyPI"
  python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" "$@" >&2
  python3 - "$HOME_DIR" "$tmp"/*.whl <<'PY'
import os, sys, zipfile
dest, wheels = sys.argv[1], sys.argv[2:]
prefix = "nvidia/cu13/"
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            name = info.filename
            if not name.startswith(prefix) or name.endswith("/") or name.endswith("__init__.py"):
                continue
            target = os.path.join(dest, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target + ".part", "wb") as out:
                out.write(src.read())
            os.chmod(target + ".part", ((info.external_attr >> 16) & 0o777) or 0o644)
            os.replace(target + ".part", target)
PY
  rm -rf "$tmp"
  touch "$marker"
}

mkdir -p "$HOME_DIR"
install "${COMPILER[@]}"
chmod +x "$HOME_DIR"/bin/* "$HOME_DIR/nvvm/bin/cicc"
# nvcc.profile looks for headers and libraries under targets/x86_64-linux, as a system
# install lays them out; here they are at the top.
mkdir -p "$HOME_DIR/targets"
[ -e "$HOME_DIR/targets/x86_64-linux" ] || ln -s .. "$HOME_DIR/targets/x86_64-linux"
[ -e "$HOME_DIR/lib64" ] || ln -s lib "$HOME_DIR/lib64"
for so in "$HOME_DIR"/lib/lib*.so.*; do   # the unversioned names the linker looks for
  base=${so%%.so.*}.so
  [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done

if [ "$LIBS" = 1 ]; then
  install "${RUNTIME[@]}"
  for so in "$HOME_DIR"/lib/lib*.so.*; do
    base=${so%%.so.*}.so
    [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
  done
  # The driver API (libcuda.so.1) belongs to the GPU node's driver; linking needs only
  # its symbols: a stub with every function cuda.h declares.
  stub="$HOME_DIR/lib/stubs/libcuda.so"
  if [ ! -f "$stub" ]; then
    mkdir -p "$(dirname "$stub")"
    gcc -E -P -I"$HOME_DIR/include" "$HOME_DIR/include/cuda.h" \
      | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' (' | sort -u \
      | sed 's/.*/int &(void) { return 999; }/' >"$DIR/libcuda-stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub" "$DIR/libcuda-stub.c"
    log "driver stub: $(wc -l <"$DIR/libcuda-stub.c") functions"
  fi
  # What the image carries: the libraries the binary loads, never the stub.
  mkdir -p "$DIR/runtime-libs"
  for lib in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 \
             libnvrtc-builtins.so.13.0; do
    [ -e "$HOME_DIR/lib/$lib" ] || { log "missing $lib"; exit 1; }
    ln -sf "$HOME_DIR/lib/$lib" "$DIR/runtime-libs/$lib"
  done
fi
"$HOME_DIR/bin/nvcc" --version | tail -2 | head -1 >&2

if [ "$PRINT_ENV" = 1 ]; then
  echo "export CUDA_HOME='$HOME_DIR' CUDA_PATH='$HOME_DIR' CUDA_ROOT='$HOME_DIR'"
  echo "export PATH='$HOME_DIR/bin':\"\$PATH\""
  # candle-kernels compiles for this GPU generation (PTX, compiled again on newer GPUs).
  echo "export CUDA_COMPUTE_CAP=\${CUDA_COMPUTE_CAP:-80}"
  echo "export CUDARC_CUDA_VERSION=13000"
  # candle's kernel builder uses half the cores by default; the kernels are the long part.
  echo "export CUDAFORGE_THREADS=\${CUDAFORGE_THREADS:-$(nproc)}"
  if [ "$LIBS" = 1 ]; then
    echo "export LIBRARY_PATH='$HOME_DIR/lib:$HOME_DIR/lib/stubs'\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
    echo "export JOBMATCH_CUDA_RUNTIME_LIBS='$DIR/runtime-libs'"
  fi
fi
