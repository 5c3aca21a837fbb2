#!/usr/bin/env bash
# The embedding bench: jobmatch's embedder against Python's sentence-transformers on the
# same 2,000 texts of 100-200 words, on this machine's CPU with the same threads, one
# after the other. Prints texts/s, tokens/s, the ratio, and peak RSS. Not part of CI.
#
#   scripts/bench-embed.sh              all cores
#   THREADS=1 scripts/bench-embed.sh    one thread each
#
# Installs sentence-transformers (and torch) from PyPI into .cache/bench-venv once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
eval "$(scripts/setup.sh --env)"

THREADS=${THREADS:-$(nproc)}
TEXTS=${TEXTS:-2000}
VENV="$ROOT/.cache/bench-venv"
OUT="$ROOT/target/bench-embed"
mkdir -p "$OUT"

if ! "$VENV/bin/python" -c 'import sentence_transformers' 2>/dev/null; then
  echo "== installing sentence-transformers into $VENV (once; torch is large)" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check sentence-transformers
fi

python3 scripts/bench_embed.py texts "$TEXTS" "$OUT/texts.jsonl"
echo "== building the bench (release)" >&2
cargo bench -p jobmatch-workers --bench embed --no-run --quiet 2>/dev/null || cargo bench -p jobmatch-workers --bench embed --no-run

run_ours() { # precision kernels
  echo "== jobmatch, $1, kernels $2, $THREADS threads" >&2
  RAYON_NUM_THREADS=$THREADS JOBMATCH_EMBED_PRECISION=$1 JOBMATCH_EMBED_KERNELS=$2 \
    cargo bench -p jobmatch-workers --bench embed --quiet -- "$OUT/texts.jsonl" "$JOBMATCH_MODEL_DIR" \
    | tail -1 > "$OUT/ours-$1-$2.json"
}
run_ours f32 candle
run_ours f32 auto
if grep -qw avx512_bf16 /proc/cpuinfo; then run_ours bf16 auto; fi
echo "== sentence-transformers, $THREADS threads" >&2
OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS "$VENV/bin/python" scripts/bench_embed.py \
  run "$OUT/texts.jsonl" "$JOBMATCH_MODEL_DIR" "$THREADS" 2>/dev/null | tail -1 > "$OUT/python.json"

python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
py = json.loads((out / "python.json").read_text())
rows = [(f"sentence-transformers (torch {py['torch'].split('+')[0]})", py)]
for name, label in [("ours-f32-candle", "jobmatch f32, candle ops"), ("ours-f32-auto", "jobmatch f32, own kernels"),
                    ("ours-bf16-auto", "jobmatch bf16, own kernels")]:
    f = out / f"{name}.json"
    if f.exists():
        rows.append((label, json.loads(f.read_text())))
print(f"\n{py['texts']} texts, {py['tokens']} tokens (after truncation at 256), {py['threads']} threads\n")
print(f"| {'embedder':<40} | {'texts/s':>8} | {'tokens/s':>9} | {'vs Python':>9} | {'peak RSS':>9} |")
print(f"|{'-'*42}|{'-'*10}|{'-'*11}|{'-'*11}|{'-'*11}|")
for label, r in rows:
    ratio = r["texts_per_s"] / py["texts_per_s"]
    rss = f"{r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else "-"
    print(f"| {label:<40} | {r['texts_per_s']:>8.1f} | {r['tokens_per_s']:>9.0f} | {ratio:>8.2f}x | {rss:>9} |")
PY
if ! command -v nvidia-smi >/dev/null; then
  echo "GPU: none here, so no GPU figure (a CUDA build is cargo build --features cuda)." >&2
fi
