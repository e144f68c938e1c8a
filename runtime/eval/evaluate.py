"""`edgembed eval`: retrieval quality and search latency of every output precision and of
the three search modes on a BEIR dataset, so choices are made on measured numbers.

Each scheme ranks the whole corpus for every judged query. Reported per scheme: nDCG@10
and recall@100 against the qrels; recall@100 against exact float search (how much of the
float top-100 it finds); and the per-query search latency with query encoding excluded
(one query per call, median and 95th percentile). For the binary + int8 rescoring
cascade, "first-stage recall" is the share of the float top-100 among the candidates that
reach int8 rescoring (k=100, k·rescore of them). The search modes (`modes`: hybrid, dense,
keyword) run through a real `Index` holding the texts, as `Index.search` runs them; the
fusion rows show hybrid search at other reciprocal-rank constants and with the other
keyword tokenizers, for choosing them on a training split.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import codes as C
from ..bench.machine import cpu_info
from ..encoder import Encoder
from ..index import Index
from ..index import keyword as K
from ..index.cascade import FUSION_DEPTH, OVERFETCH, RRF_CONSTANT, fuse, fusion_depth, top
from .beir import BeirData, load_beir, ndcg_at_k, recall_at_k
from .residual import residual_encode, residual_scores

LATENCY_QUERIES = 300
RRF_SWEEP = (1, 2, 3, 5, 10, 20, 40, 60, 100)
COMMON_TERM_SWEEP = (1.0, 0.5, 0.1, 0.05)  # besides the default


def _embed(encoder: Encoder, data: BeirData, data_dir: Path, split: str,
           cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Document and query vectors, cached under `cache` keyed by model, data and split."""
    key = hashlib.sha256(f"{encoder.package.package_id}|{data_dir.resolve()}|{split}|"
                         f"{len(data.doc_ids)}|{len(data.query_ids)}".encode()).hexdigest()[:16]
    paths = (cache / f"{key}-docs.npy", cache / f"{key}-queries.npy") if cache else None
    if paths and all(p.is_file() for p in paths):
        return np.load(paths[0]), np.load(paths[1])
    show = sys.stderr.isatty()
    docs = encoder.encode(data.doc_texts, kind="document", show_progress=show)
    queries = encoder.encode(data.query_texts, kind="query", show_progress=show)
    if paths:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(paths[0], docs)
        np.save(paths[1], queries)
    return docs, queries


def _load_average() -> list[float]:
    """1-, 5- and 15-minute load averages: other work on the machine slows every timing."""
    return [round(value, 2) for value in os.getloadavg()]


def _latency(search_one: Callable[[np.ndarray], Any], queries: np.ndarray) -> dict[str, float]:
    """Per-query milliseconds of `search_one(query vector)`."""
    return _latency_of(lambda i: search_one(queries[i]), len(queries))


def _latency_of(search_one: Callable[[int], Any], count: int) -> dict[str, float]:
    """Per-query milliseconds of `search_one(i)` over the first LATENCY_QUERIES queries."""
    for i in range(min(5, count)):  # warm caches and lazy initialisation
        search_one(i)
    times = []
    for i in range(min(LATENCY_QUERIES, count)):
        start = time.perf_counter()
        search_one(i)
        times.append((time.perf_counter() - start) * 1e3)
    return {"median": round(float(np.median(times)), 4),
            "p95": round(float(np.percentile(times, 95)), 4)}


def _overlap(ranked: list[np.ndarray], reference: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(r, ref)) / len(ref)
                          for r, ref in zip(ranked, reference, strict=True)]))


def evaluate(data_dir: str | Path, encoder: Encoder, split: str = "test",
             cache: str | Path | None = None, rescore: int = 4,
             command: str | None = None) -> dict[str, Any]:
    """Run every scheme and search mode on a BEIR folder; returns the JSON-able report
    (`command`: the command line to record in it)."""
    load = _load_average()
    data_dir = Path(data_dir).expanduser()
    data = load_beir(data_dir, split)
    docs, queries = _embed(encoder, data, data_dir, split, Path(cache) if cache else None)
    doc_ids, dim = data.doc_ids, encoder.dim
    calibration = encoder.manifest.calibration or {}
    ranges = encoder.int8_ranges
    ids = np.asarray(doc_ids)

    def judged(top: Sequence[np.ndarray]) -> tuple[float, float]:
        ranked = [list(ids[np.asarray(row, dtype=np.int64)]) for row in top]
        return (ndcg_at_k([r[:10] for r in ranked], data.query_ids, data.qrels, 10),
                recall_at_k(ranked, data.query_ids, data.qrels, 100))

    def top_rows(scores: np.ndarray, count: int = 100) -> np.ndarray:
        return np.stack([top(row, count) for row in scores])

    exact_top = top_rows(queries @ docs.T)
    rows: list[dict[str, Any]] = []

    def one_stage(name: str, bits: float, nbytes: int, scores: np.ndarray,
                  search_one: Callable[[np.ndarray], Any] | None, note: str = "") -> None:
        best = top_rows(scores)
        ndcg, recall = judged(best)
        rows.append({"scheme": name, "bits_per_dim": bits, "bytes_per_doc": nbytes,
                     "ndcg@10": round(ndcg, 4), "recall@100": round(recall, 4),
                     "recall@100_vs_exact": round(_overlap(list(best), exact_top), 4),
                     "latency_ms": _latency(search_one, queries) if search_one else None,
                     "note": note})

    nbytes = C.code_bytes(dim)
    one_stage("float32 exact", 32, 4 * dim, queries @ docs.T,
              lambda q: top(docs @ q, 10))
    int8_docs = C.quantize_int8(docs, ranges)
    one_stage("int8", 8, dim, C.int8_scores(queries, int8_docs, ranges),
              lambda q: top(C.int8_scores(q, int8_docs, ranges), 10),
              f"float query . dequantized int8 doc; ranges: {ranges.source}")
    doc_codes, query_codes = C.pack_signs(docs), C.pack_signs(queries)
    hamming = C.hamming_distances(query_codes, doc_codes).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="edgembed-eval-") as tmp:
        index = Index.create(Path(tmp) / "exact", encoder, mode="exact")
        index.add_vectors(docs, texts=data.doc_texts, ids=list(range(len(docs))))
        index.save()
        one_stage("binary (Hamming)", 1, nbytes, -hamming,
                  lambda q: index.hamming_neighbours(q, 10),
                  "sign bits x > 0, usearch exact Hamming search")
        if calibration.get("mean"):
            mean = np.asarray(calibration["mean"], np.float32)
            centred = C.hamming_distances(C.pack_signs(queries - mean), C.pack_signs(docs - mean))
            one_stage("binary, calibrated mean centre", 1, nbytes, -centred.astype(np.float32),
                      None, "measured only: bits of x - mean(calibration); not used")
        one_stage("binary asymmetric", 1, nbytes, C.asymmetric_scores(queries, doc_codes),
                  lambda q: top(C.asymmetric_scores(q, doc_codes), 10),
                  "float query . sign(doc), exact scan")
        scales = np.asarray((calibration.get("residual") or {}).get("scales") or [], np.float32)
        if scales.ndim == 2 and scales.shape[0] >= 2:
            for bits in range(2, scales.shape[0] + 1):
                residual = residual_encode(docs, scales, bits)
                for symmetric in (False, True):
                    timed = bits == 2 and not symmetric
                    one_stage(f"{bits}-bit residual {'symmetric' if symmetric else 'asymmetric'}",
                              bits, bits * nbytes,
                              residual_scores(queries, residual, scales, symmetric=symmetric),
                              (lambda q, r=residual: top(residual_scores(q, r, scales), 10))
                              if timed else None,
                              "per-dimension scales from the package calibration")
        rows += _cascades(index, docs, queries, exact_top, judged, rescore)
        hnsw = Index.create(Path(tmp) / "hnsw", encoder, mode="hnsw")
        hnsw.add_vectors(docs, ids=list(range(len(docs))))
        rows += _cascades(hnsw, docs, queries, exact_top, judged, rescore, sweep=False)
        hnsw.close()
        reader = Index.open(index.path, encoder, view=True)
        modes, fusion = _modes(reader, data.query_texts, queries, exact_top, judged, rescore)
        reader.close()
        default = K.default_tokenizer(encoder.tokenizer.get_vocab())
        for name in K.TOKENIZERS:
            if name != default:
                other = Index.create(Path(tmp) / name, encoder, keyword_tokenizer=name)
                other.add_vectors(docs, texts=data.doc_texts, ids=list(range(len(docs))))
                other.save()
                fusion += _fusion_sweep(other, data.query_texts, queries, judged, rescore,
                                        name)
                other.close()
        index.close()
    return {
        "data": str(data_dir.name), "split": split, "n_docs": len(doc_ids),
        "n_queries": len(data.query_ids), "model": encoder.manifest.name,
        "package_id": encoder.package.package_id,
        "calibration": {"int8": ranges.source,
                        "texts": calibration.get("texts"), "n_texts": calibration.get("n_texts")},
        "rescore_overfetch": OVERFETCH,
        "command": command,
        "machine": {"python": platform.python_version(), "machine": platform.machine(),
                    "cpu": cpu_info(), "load_average_at_start": load,
                    "load_average_at_end": _load_average()},
        "latency": "per query, query encoding excluded, one query per call, single process",
        "modes": modes,
        "fusion": {"rule": "reciprocal-rank fusion of the dense and the keyword top "
                           f"{FUSION_DEPTH}", "constant": RRF_CONSTANT, "depth": FUSION_DEPTH,
                   "keyword_tokenizer": default, "common_term_share": K.COMMON_TERM_SHARE,
                   "sweep": fusion},
        "schemes": rows,
        "notes": [] if scales.ndim == 2 and scales.shape[0] >= 2 else [
            "the package has no calibration: int8 uses the [-1, 1] fallback and the multi-bit "
            "residual rows are skipped; re-export the package to calibrate it"],
    }


def _cascades(index: Index, docs: np.ndarray, queries: np.ndarray, exact_top: np.ndarray,
              judged: Callable[[Sequence[np.ndarray]], tuple[float, float]], rescore: int,
              sweep: bool = True) -> list[dict[str, Any]]:
    """Binary first stage + int8 rescoring through the real Index, for several rescore."""
    rows = []
    nbytes = C.code_bytes(index.dim) + index.dim
    for m in sorted({0, 1, 2, rescore, 8}) if sweep else [rescore]:
        ranked10 = [keys for keys, _ in index.rank_vectors(queries, k=10, rescore=m)]
        ranked100 = [keys for keys, _ in index.rank_vectors(queries, k=100, rescore=m)]
        ndcg, _ = judged(ranked10)
        _, recall = judged(ranked100)
        first = index.candidates(queries, k=100, rescore=m)
        rows.append({
            "scheme": f"binary + int8 rescore={m}" + (" (HNSW)" if index.mode == "hnsw" else ""),
            "bits_per_dim": 1 if m == 0 else 9, "bytes_per_doc": nbytes, "rescore": m,
            "ndcg@10": round(ndcg, 4), "recall@100": round(recall, 4),
            "recall@100_vs_exact": round(_overlap(ranked100, exact_top), 4),
            "first_stage_recall@100_vs_exact": round(_overlap(first, exact_top), 4),
            "latency_ms": _latency(lambda q, m=m: index.rank_vectors(q, k=10, rescore=m),
                                   queries),
            "note": (f"usearch Hamming top {OVERFETCH}·k·m → asymmetric refine to k·m → "
                     "int8 rescoring to k" if m else
                     f"usearch Hamming top {OVERFETCH}·k → asymmetric refine to k (no int8)"),
        })
    return rows


def _modes(index: Index, texts: list[str], queries: np.ndarray, exact_top: np.ndarray,
           judged: Callable[[Sequence[np.ndarray]], tuple[float, float]], rescore: int,
           ) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """The three search modes as `Index.search` runs them (texts in the index, the query
    vectors given), and the fusion sweep of the index's tokenizer."""
    modes = {}
    for mode in ("hybrid", "dense", "keyword"):
        ndcg, _ = judged([keys for keys, _ in index.rank(texts, k=10, mode=mode,
                                                         vectors=queries, rescore=rescore)])
        ranked100 = [keys for keys, _ in index.rank(texts, k=100, mode=mode, vectors=queries,
                                                    rescore=rescore)]
        _, recall = judged(ranked100)
        fresh = Index.open(index.path, index.encoder, view=True)  # nothing cached yet
        latency = _latency_of(lambda i, m=mode, f=fresh: f.rank(
            texts[i:i + 1], k=10, mode=m, vectors=queries[i:i + 1], rescore=rescore),
            len(texts))
        fresh.close()
        modes[mode] = {
            "ndcg@10": round(ndcg, 4), "recall@100": round(recall, 4),
            "recall@100_vs_exact": round(_overlap(ranked100, exact_top), 4),
            "latency_ms": latency,
            "note": {"hybrid": f"RRF (constant {RRF_CONSTANT}) of the dense and keyword top "
                               f"{FUSION_DEPTH}",
                     "dense": f"binary first stage + int8 rescore={rescore}",
                     "keyword": f"SQLite FTS5 BM25, tokenizer {index.keyword_tokenizer!r}, "
                                "any of the query's words"}[mode]}
    name = next((name for name, spec in K.TOKENIZERS.items()
                 if spec == index.keyword_tokenizer), index.keyword_tokenizer)
    sweep = _fusion_sweep(index, texts, queries, judged, rescore, name)
    for share in COMMON_TERM_SWEEP:
        index.common_term_share = share
        sweep += _fusion_sweep(index, texts, queries, judged, rescore, name,
                               constants=(RRF_CONSTANT,))
    index.common_term_share = K.COMMON_TERM_SHARE
    return modes, sweep


def _fusion_sweep(index: Index, texts: list[str], queries: np.ndarray,
                  judged: Callable[[Sequence[np.ndarray]], tuple[float, float]], rescore: int,
                  tokenizer: str, constants: Sequence[int] = RRF_SWEEP,
                  ) -> list[dict[str, Any]]:
    """Keyword alone and hybrid at these RRF constants, for the index's tokenizer and
    common-term share."""
    depth, dense_rescore = fusion_depth(10, rescore)  # the dense side of a top-10 search
    dense = [keys for keys, _ in index.rank(texts, k=depth, mode="dense",
                                            vectors=queries, rescore=dense_rescore)]
    words = [keys for keys, _ in index.rank(texts, k=FUSION_DEPTH, mode="keyword")]
    keyword_ndcg, keyword_recall = judged(words)
    share = index.common_term_share
    rows = [{"keyword_tokenizer": tokenizer, "common_term_share": share, "ranking": "keyword",
             "ndcg@10": round(keyword_ndcg, 4), "recall@100": round(keyword_recall, 4)}]
    for constant in constants:
        fused = [fuse([d, w], FUSION_DEPTH, constant)[0] for d, w in zip(dense, words,
                                                                          strict=True)]
        ndcg, recall = judged(fused)
        rows.append({"keyword_tokenizer": tokenizer, "common_term_share": share,
                     "ranking": f"hybrid, RRF {constant}", "rrf_constant": constant,
                     "ndcg@10": round(ndcg, 4), "recall@100": round(recall, 4)})
    return rows


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{report['data']} ({report['split']}): {report['n_docs']} docs, "
             f"{report['n_queries']} queries, model {report['package_id']}, "
             f"int8 ranges: {report['calibration']['int8']}",
             f"{'scheme':<38} {'bits':>4} {'B/doc':>5} {'nDCG@10':>8} {'R@100':>6} "
             f"{'R@100/exact':>11} {'1st-stage':>9} {'ms/query':>9}"]
    for row in report["schemes"]:
        latency = row.get("latency_ms")
        first = row.get("first_stage_recall@100_vs_exact")
        first_text = "" if first is None else f"{first:.4f}"
        latency_text = "" if not latency else f"{latency['median']:.3f}"
        lines.append(
            f"{row['scheme']:<38} {row['bits_per_dim']:>4} {row['bytes_per_doc']:>5} "
            f"{row['ndcg@10']:>8.4f} {row['recall@100']:>6.4f} "
            f"{row['recall@100_vs_exact']:>11.4f} {first_text:>9} {latency_text:>9}")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    lines.append(f"{'search mode':<12} {'nDCG@10':>8} {'R@100':>6} {'R@100/exact':>11} "
                 f"{'ms/query':>9} {'p95 ms':>7}")
    for mode, row in report["modes"].items():
        lines.append(f"{mode:<12} {row['ndcg@10']:>8.4f} {row['recall@100']:>6.4f} "
                     f"{row['recall@100_vs_exact']:>11.4f} {row['latency_ms']['median']:>9.3f} "
                     f"{row['latency_ms']['p95']:>7.3f}")
    fusion = report["fusion"]
    lines.append(f"fusion sweep (hybrid top-{fusion['depth']} lists; default constant "
                 f"{fusion['constant']}, tokenizer {fusion['keyword_tokenizer']}):")
    lines += [f"  {row['keyword_tokenizer']:<8} share {row['common_term_share']:<4} "
              f"{row['ranking']:<16} nDCG@10 {row['ndcg@10']:.4f}  R@100 "
              f"{row['recall@100']:.4f}" for row in fusion["sweep"]]
    return "\n".join(lines)
