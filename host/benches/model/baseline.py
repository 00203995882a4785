"""The native baseline of `scripts/bench.sh model`: sentence-transformers
on PyTorch (CPU) embedding the same sentences, in this process.

    baseline.py MODEL_DIR SENTENCES_JSON RUNS

Prints one JSON line: the median seconds of one batch, of one short
sentence alone (the first), torch's version and thread count.
"""

import json
import statistics
import sys
import time

import torch
from sentence_transformers import SentenceTransformer, models

model_dir, sentences_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
sentences = json.loads(open(sentences_file, encoding="utf-8").read())
transformer = models.Transformer(model_dir, max_seq_length=256)
pooling = models.Pooling(transformer.get_word_embedding_dimension(), pooling_mode="mean")
model = SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")
model.encode(sentences, batch_size=len(sentences))
times = []
for _ in range(runs):
    started = time.perf_counter()
    model.encode(sentences, batch_size=len(sentences))
    times.append(time.perf_counter() - started)
single = []
for _ in range(21):
    started = time.perf_counter()
    model.encode(sentences[:1], batch_size=1)
    single.append(time.perf_counter() - started)
print(
    json.dumps(
        {
            "seconds": statistics.median(times),
            "single_seconds": statistics.median(single),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }
    )
)
