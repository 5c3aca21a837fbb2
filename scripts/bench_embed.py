#!/usr/bin/env python3
"""The Python side of the embedding bench (scripts/bench-embed.sh runs it).

    bench_embed.py texts N OUT            writes N job-posting-like texts of 100-200 words
    bench_embed.py run TEXTS MODEL THREADS  embeds them with sentence-transformers on CPU

`run` prints one JSON line: texts/s, tokens/s (real tokens, truncated at the model's
limit, specials included) and the token count.
"""
import json
import random
import resource
import sys
import time

WORDS = """
we are hiring a senior backend engineer to build distributed systems in rust and go
you will design apis own services end to end and work with product and design teams
our platform processes millions of events per day on kubernetes with postgres kafka and
redis experience with cloud infrastructure aws gcp terraform observability prometheus
grafana tracing is a plus the role is remote friendly across europe and north america
we offer competitive salary equity health insurance learning budget and flexible hours
responsibilities include mentoring engineers reviewing code improving reliability and
performance writing documentation and participating in an on call rotation requirements
five years of professional software development strong computer science fundamentals
clear written communication curiosity ownership and a bias for shipping data pipelines
machine learning models frontend react typescript mobile ios android security compliance
customer support sales marketing finance operations analytics dashboards sql python java
""".split()


def texts(n, out):
    rng = random.Random(20261125)
    with open(out, "w") as f:
        for _ in range(n):
            words = rng.randint(100, 200)
            sentences, left = [], words
            while left > 0:
                k = min(left, rng.randint(8, 20))
                s = " ".join(rng.choice(WORDS) for _ in range(k))
                sentences.append(s[0].upper() + s[1:] + ".")
                left -= k
            f.write(json.dumps(" ".join(sentences)) + "\n")


def run(path, model_dir, threads):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    data = [json.loads(line) for line in open(path)]
    model = SentenceTransformer(model_dir, device="cpu")
    tokens = sum(
        len(ids)
        for ids in model.tokenizer(data, truncation=True, max_length=model.max_seq_length)["input_ids"]
    )
    model.encode(data[:64], batch_size=32)  # warm-up
    start = time.perf_counter()
    model.encode(data, batch_size=32)
    secs = time.perf_counter() - start
    print(json.dumps({
        "texts": len(data), "tokens": tokens, "seconds": secs,
        "texts_per_s": len(data) / secs, "tokens_per_s": tokens / secs,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    if sys.argv[1] == "texts":
        texts(int(sys.argv[2]), sys.argv[3])
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(__doc__)
