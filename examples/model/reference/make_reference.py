#!/usr/bin/env python3
"""Writes embeddings.json, the fixture the `model` tool is tested against.

It embeds varied sentences with sentence-transformers' own pipeline for
all-MiniLM-L6-v2 (tokenizer, BERT, mean pooling, L2 normalisation), loaded
from the local model directory that `scripts/fetch-model.sh` unpacks (no
network). It records each sentence's token ids as the model saw them
(truncated to max_seq_length = 256) and its embedding rounded to 6
decimals.

    python3 -m venv ~/.cache/toolmesh/st-venv
    ~/.cache/toolmesh/st-venv/bin/pip install sentence-transformers
    ~/.cache/toolmesh/st-venv/bin/python examples/model/reference/make_reference.py [MODEL_DIR]

MODEL_DIR defaults to $TOOLMESH_MODEL_DIR, else
~/.cache/toolmesh/model/all-MiniLM-L6-v2.

With `--code-points FILE` it writes, instead, the token ids of every
Unicode scalar value c alone and between two letters ("xcx"), one line
each (`hex<TAB>ids<TAB>ids`), for the tokenizer test that is ignored
unless TOOLMESH_TOKENIZER_DUMP names such a file (about 40 MB: not
committed).
"""

import json
import os
import sys
from pathlib import Path

from sentence_transformers import SentenceTransformer, models

MAX_SEQ_LENGTH = 256

LONG_ENGLISH = " ".join(
    [
        "The history of natural language processing generally started in the 1950s,",
        "although work can be found from earlier periods.",
        "In 1950, Alan Turing published an article titled 'Computing Machinery and Intelligence'",
        "which proposed what is now called the Turing test as a criterion of intelligence.",
    ]
    * 8
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome",
    "The cat sits outside",
    "",
    "   ",
    "Café naïve résumé — déjà vu at the Ångström façade.",
    "Ελληνικά: καλημέρα κόσμε, ΆΈΉ",
    "Straße, İstanbul, ǅemal and ΣΊΣΥΦΟΣ",
    "我喜欢自然语言处理。",
    "東京は日本の首都です。カタカナもあります",
    "한국어 문장도 처리할 수 있습니다.",
    "مرحبا بالعالم، كيف حالك؟",
    "हिन्दी में एक वाक्य",
    "Привет, как дела? Ёлка и йогурт.",
    "Emoji time 😀🎉👍🏽 and a newer one 🥲 and a family 👨‍👩‍👧 ❤️",
    "Wait... what?!?! (really) [sure] {ok} <tag> #hash @user $100 50% a&b*c ~/path_to/file.rs",
    "Pi is 3.14159, e is 2.71828; 1,000,000 people on 2024-01-01 at 12:30.",
    "tabs\tand\nnewlines\r\n  and   spaces\u00a0nbsp\u200bzero\u2003width\u3000ideographic",
    "\x00null\x07bell\ufffdreplacement\u00adsoft-hyphen\u202eright-to-left",
    "[MASK] and [CLS] and [SEP] inside text, [unk] lowercase, foo[PAD]bar",
    "unaffable antidisestablishmentarianism supercalifragilisticexpialidocious",
    "a" * 150 + " followed by normal words",
    'fn main() { println!("hello, world"); } // 🦀 rust',
    "The quick brown fox jumps over the lazy dog.",
    LONG_ENGLISH,
    "自然语言处理是计算机科学领域与人工智能领域中的一个重要方向。" * 12,
]


def model_dir(args: list[str]) -> Path:
    if args:
        return Path(args[0])
    env = os.environ.get("TOOLMESH_MODEL_DIR")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "toolmesh" / "model" / "all-MiniLM-L6-v2"


def load(directory: Path) -> SentenceTransformer:
    if not (directory / "model.safetensors").is_file():
        sys.exit(f"error: no model in {directory}: run scripts/fetch-model.sh first")
    transformer = models.Transformer(str(directory), max_seq_length=MAX_SEQ_LENGTH)
    dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
    pooling = models.Pooling(dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu")


def ids_of(model: SentenceTransformer, texts: list[str]) -> list[list[int]]:
    return model.tokenizer(texts, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]


def dump_code_points(model: SentenceTransformer, out: Path) -> None:
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    with open(out, "w", encoding="utf-8") as f:
        for start in range(0, len(points), 20000):
            chunk = [chr(c) for c in points[start : start + 20000]]
            alone = ids_of(model, chunk)
            between = ids_of(model, ["x" + c + "x" for c in chunk])
            for c, a, b in zip(chunk, alone, between):
                f.write(f"{ord(c):x}\t{' '.join(map(str, a))}\t{' '.join(map(str, b))}\n")
    print(f"wrote the token ids of {len(points)} code points to {out}")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--code-points"] and len(args) >= 2:
        dump_code_points(load(model_dir(args[2:])), Path(args[1]))
        return
    model = load(model_dir(args))

    vectors = model.encode(SENTENCES, batch_size=8, convert_to_numpy=True)
    cases = []
    for sentence, vector in zip(SENTENCES, vectors):
        ids = ids_of(model, [sentence])[0]
        cases.append(
            {
                "text": sentence,
                "ids": ids,
                "embedding": [round(float(v), 6) for v in vector],
            }
        )

    a, b = model.encode(["A man is eating food.", "A man is eating a piece of bread."])
    cosine = float((a @ b) / ((a @ a) ** 0.5 * (b @ b) ** 0.5))
    print(f"cos('A man is eating food.', 'A man is eating a piece of bread.') = {cosine:.4f}")

    out = Path(__file__).resolve().parent / "embeddings.json"
    document = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "max_seq_length": MAX_SEQ_LENGTH,
        "dimensions": int(vectors.shape[1]),
        "cases": cases,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} sentences to {out}")


if __name__ == "__main__":
    main()
