#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (driver 580 or later, for CUDA 13): builds jobmatch with
# the `cuda` feature, then checks embedding parity on the GPU against Python's
# sentence-transformers (the committed fixture, tests/fixtures/parity) in f32, bf16 and
# f16, and runs the embedding bench with large batches, printing texts/s.
# Not part of CI (no GPU there); scripts/cuda-check.sh is what CI compiles.
#
#   scripts/gpu-check.sh            CUDA_COMPUTE_CAP defaults to the GPU's own
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
command -v nvidia-smi >/dev/null || { echo "gpu-check: no nvidia-smi: this needs an NVIDIA GPU" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader >&2
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  CUDA_COMPUTE_CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
  export CUDA_COMPUTE_CAP
fi
eval "$(scripts/setup.sh --env)"
eval "$(scripts/cuda-toolkit.sh --env --libs)"
# The runtime libraries from PyPI, then the driver's libcuda from the system.
export LD_LIBRARY_PATH="$JOBMATCH_CUDA_RUNTIME_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CARGO_TARGET_DIR="$ROOT/target/cuda"
echo "== building jobmatch with CUDA (release, compute capability $CUDA_COMPUTE_CAP)" >&2
cargo build --release --locked --quiet -p jobmatch-workers --bin jobmatch --features cuda
BIN="$CARGO_TARGET_DIR/release/jobmatch"

echo "== parity with sentence-transformers on the GPU" >&2
for precision in f32 bf16 f16; do
  python3 - "$BIN" "$precision" "$ROOT/tests/fixtures/parity/vectors.jsonl" <<'PY'
import json, math, subprocess, sys
binary, precision, fixture = sys.argv[1:4]
refs = [json.loads(l) for l in open(fixture)]
stdin = "".join(json.dumps(r["text"]) + "\n" for r in refs)
out = subprocess.run([binary, "embed"], input=stdin, capture_output=True, text=True,
                     env={**__import__("os").environ, "JOBMATCH_EMBED_PRECISION": precision})
if out.returncode != 0:
    sys.exit(f"{precision}: jobmatch embed failed: {out.stderr[-2000:]}")
vectors = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
vectors = [v["embedding"] if isinstance(v, dict) else v for v in vectors]
def cos(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
worst = min(cos(v, r["vector"]) for v, r in zip(vectors, refs))
need = 0.9999 if precision == "f32" else 0.999
device = "GPU" if " on GPU" in out.stderr else "CPU"
print(f"{precision}: {len(vectors)} texts, lowest cosine {worst:.7f} (need {need}), device {device}")
if len(vectors) != len(refs) or worst < need or device != "GPU":
    sys.exit(f"{precision}: parity failed")
PY
done

echo "== the embedding bench with large batches" >&2
python3 scripts/bench_embed.py texts "${TEXTS:-20000}" "$CARGO_TARGET_DIR/bench-texts.jsonl"
for precision in f32 bf16 f16; do
  JOBMATCH_EMBED_PRECISION=$precision \
  JOBMATCH_EMBED_MAX_BATCH_TEXTS=${MAX_BATCH_TEXTS:-512} JOBMATCH_EMBED_MAX_BATCH_TOKENS=${MAX_BATCH_TOKENS:-131072} \
    cargo bench --locked --quiet -p jobmatch-workers --features cuda --bench embed -- \
    "$CARGO_TARGET_DIR/bench-texts.jsonl" "$JOBMATCH_MODEL_DIR" | tail -1
done
