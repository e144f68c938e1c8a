"""BEIR-layout retrieval data (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) and the two
metrics everyone quotes for it, nDCG@10 and recall@100, computed as pytrec_eval does."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import EdgembedError


@dataclass(frozen=True)
class BeirData:
    doc_ids: list[str]
    doc_texts: list[str]  # title + " " + text, the BEIR/MTEB convention
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]  # query id → {doc id: graded relevance}


def _read_jsonl(path: Path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EdgembedError(f"cannot read {path}: {exc}") from None


def load_beir(path: str | Path, split: str = "test") -> BeirData:
    """Load a BEIR folder; only queries judged in `split` are kept."""
    root = Path(path).expanduser()
    qrels_path = root / "qrels" / f"{split}.tsv"
    for required in (root / "corpus.jsonl", root / "queries.jsonl", qrels_path):
        if not required.is_file():
            raise EdgembedError(f"not a BEIR folder: missing {required}")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    corpus = _read_jsonl(root / "corpus.jsonl")
    queries = [q for q in _read_jsonl(root / "queries.jsonl") if str(q["_id"]) in qrels]
    return BeirData(
        doc_ids=[str(doc["_id"]) for doc in corpus],
        doc_texts=[(doc.get("title", "") + " " + doc.get("text", "")).strip() for doc in corpus],
        query_ids=[str(q["_id"]) for q in queries],
        query_texts=[q["text"] for q in queries],
        qrels=qrels,
    )


def ndcg_at_k(ranked: list[list[str]], query_ids: list[str],
              qrels: dict[str, dict[str, int]], k: int = 10) -> float:
    """Mean nDCG@k with graded gains and log2(rank + 1) discounts (pytrec_eval's ndcg_cut)."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    scores = []
    for query_id, docs in zip(query_ids, ranked, strict=True):
        judged = qrels.get(query_id, {})
        gains = np.array([judged.get(doc, 0) for doc in docs[:k]], dtype=np.float64)
        ideal = np.sort(np.array([g for g in judged.values() if g > 0], dtype=np.float64))[::-1]
        ideal_dcg = float(np.sum(ideal[:k] * discounts[:len(ideal[:k])]))
        dcg = float(np.sum(gains * discounts[:len(gains)]))
        scores.append(dcg / ideal_dcg if ideal_dcg > 0 else 0.0)
    return float(np.mean(scores)) if scores else 0.0


def recall_at_k(ranked: list[list[str]], query_ids: list[str],
                qrels: dict[str, dict[str, int]], k: int = 100) -> float:
    scores = []
    for query_id, docs in zip(query_ids, ranked, strict=True):
        relevant = {doc for doc, grade in qrels.get(query_id, {}).items() if grade > 0}
        if relevant:
            scores.append(len(relevant.intersection(docs[:k])) / len(relevant))
    return float(np.mean(scores)) if scores else 0.0


def rank_exact(doc_vectors: np.ndarray, query_vectors: np.ndarray, doc_ids: list[str],
               k: int = 100) -> list[list[str]]:
    """Top-k doc ids per query by dot product (cosine for normalised vectors)."""
    scores = query_vectors @ doc_vectors.T
    top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
    rows = np.take_along_axis(scores, top, axis=1)
    order = np.take_along_axis(top, np.argsort(-rows, axis=1, kind="stable"), axis=1)
    return [[doc_ids[i] for i in row] for row in order]


def exact_search_quality(data: BeirData, doc_vectors: np.ndarray,
                         query_vectors: np.ndarray) -> dict[str, float]:
    """nDCG@10 and recall@100 (4 decimals) of exact search with these vectors: the two
    numbers every quality card and benchmark row quotes."""
    ranked = rank_exact(doc_vectors, query_vectors, data.doc_ids, k=100)
    return {"ndcg@10": round(ndcg_at_k(ranked, data.query_ids, data.qrels, 10), 4),
            "recall@100": round(recall_at_k(ranked, data.query_ids, data.qrels, 100), 4)}
