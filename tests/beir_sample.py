"""A tiny BEIR-layout folder made from the built-in sentences, for the commands that take
`--data` / `--eval-data` (SciFact itself is evaluation data that never enters the repo)."""

from __future__ import annotations

import json
from pathlib import Path


def write_beir(folder: Path, documents: list[str],
               splits: dict[str, dict[str, int]]) -> Path:
    """corpus.jsonl of `documents` (ids d0, d1, ...), and per split a qrels file judging
    each query relevant to one document. `splits` maps split → {query text: document
    number}; queries get ids q0, q1, ... across all splits."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(documents):
            handle.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    queries = [(text, doc) for judged in splits.values() for text, doc in judged.items()]
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for i, (text, _) in enumerate(queries):
            handle.write(json.dumps({"_id": f"q{i}", "text": text}) + "\n")
    ids = {text: f"q{i}" for i, (text, _) in enumerate(queries)}
    for split, judged in splits.items():
        (folder / "qrels" / f"{split}.tsv").write_text(
            "query-id\tcorpus-id\tscore\n"
            + "".join(f"{ids[text]}\td{doc}\t1\n" for text, doc in judged.items()))
    return folder


def copies_as_queries(documents: list[str], every: int = 7) -> dict[str, int]:
    """Queries that are copies of every `every`-th document, each judged relevant to its
    copy: exact float search ranks it first, so nDCG@10 is 1."""
    return {documents[i]: i for i in range(0, len(documents), every)}
