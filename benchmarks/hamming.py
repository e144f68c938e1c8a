"""Exact top-10 Hamming search over N sign codes: edgembed's `Index` against FAISS
`IndexBinaryFlat` and every exact entry point of the installed usearch, in one run.

    python -m edgembed.bench.hamming --vectors DOCS.npy --out FILE.json [--n 1000000]

Codes are the sign bits of Gaussian vectors with the mean and covariance of real
embeddings (`--vectors`, float32 rows), so each bit keeps its real bias and each pair its
real correlation; queries are drawn the same way. Each method answers one query per call,
the methods taking turns query by query (median ms over the queries); results are checked
against numpy, tie-aware (a code counts if it is within the true 10th distance).
"edgembed Index" is the product path: `Index.hamming_neighbours` on float query vectors
(sign, scan, top 10 with ties).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgembed import codes as C

from .machine import machine_info
from .search import K, kth_distances, numpy_topk, recall, time_side_by_side

QUERIES = 100


def synthetic_vectors(mean: np.ndarray, cov: np.ndarray, n: int, seed: int,
                      chunk: int = 100_000) -> np.ndarray:
    """n float32 draws from N(mean, cov), made in chunks."""
    rng = np.random.default_rng(seed)
    factor = np.linalg.cholesky(cov + 1e-6 * np.eye(len(mean))).astype(np.float32)
    out = np.empty((n, len(mean)), np.float32)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        out[start:start + rows] = rng.standard_normal((rows, len(mean)),
                                                      dtype=np.float32) @ factor.T + mean
    return out


def run(docs: np.ndarray, n: int, seed: int = 0) -> dict[str, Any]:
    import faiss
    from usearch.index import Index as UsearchIndex
    from usearch.index import MetricKind, search

    from edgembed import Encoder, Index

    mean, cov = docs.mean(axis=0), np.cov(docs, rowvar=False)
    query_vectors = synthetic_vectors(mean, cov, QUERIES, seed + 1)
    queries = C.pack_signs(query_vectors)
    codes = np.empty((n, C.code_bytes(docs.shape[1])), np.uint8)
    for start in range(0, n, 100_000):  # codes only: the float vectors are not kept
        rows = min(100_000, n - start)
        codes[start:start + rows] = C.pack_signs(
            synthetic_vectors(mean, cov, rows, seed + 10 + start))
    db64 = codes.view(np.uint64)
    kth = kth_distances(db64, queries)
    # Everything is built first and timed together, the methods taking turns query by
    # query (`time_side_by_side`), so the machine's slow phases fall on all of them alike.
    # FAISS's OpenMP workers spin for milliseconds after each call, slowing whatever runs
    # next on the other core: numpy (one thread, the slowest) follows them, not the scan.
    with tempfile.TemporaryDirectory(prefix="edgembed-hamming-") as tmp:
        encoder = Encoder.load(threads=1)
        index = Index.create(Path(tmp) / "index", encoder)
        zeros = np.zeros((100_000, docs.shape[1]), np.int8)
        for start in range(0, n, 100_000):
            part = codes[start:start + 100_000]
            index.add_codes(part, zeros[:len(part)], ids=list(range(start, start + len(part))))
        usearch = UsearchIndex(ndim=codes.shape[1] * 8, metric="hamming", dtype="b1",
                               connectivity=2, expansion_add=1)
        usearch.add(np.arange(n), codes)
        flat = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        flat.add(codes)
        searches: dict[str, Callable[[int], Any]] = {  # each answers query number i
            "edgembed Index.hamming_neighbours (exact scan)":
                lambda i: index.hamming_neighbours(query_vectors[i], K)[0][:K].astype(np.int64)}
        for threads in (1, 2):
            searches[f"usearch Index.search exact ({threads} thread{'s' * (threads > 1)})"] = \
                lambda i, t=threads: usearch.search(queries[i], K, exact=True, threads=t).keys
        searches["usearch.index.search exact=True on the codes matrix (2 threads)"] = \
            lambda i: np.atleast_2d(search(codes, queries[i:i + 1], K, MetricKind.Hamming,
                                           exact=True, threads=2).keys)[0]
        for threads in (1, 2):
            searches[f"faiss IndexBinaryFlat ({threads} thread{'s' * (threads > 1)})"] = \
                lambda i, t=threads: (faiss.omp_set_num_threads(t),
                                      flat.search(queries[i:i + 1], K)[1][0])[1]
        searches["numpy (XOR, popcount, sum, partition; 1 thread)"] = \
            lambda i: numpy_topk(db64, queries[i])[0]
        methods: dict[str, dict[str, Any]] = {}
        for name, (ms, results) in time_side_by_side(searches, np.arange(QUERIES)).items():
            methods[name] = {"ms_per_query": round(ms, 3),
                             "recall@10": recall(db64, queries, results, kth)}
            print(f"{name}: {methods[name]['ms_per_query']} ms", file=sys.stderr, flush=True)
        index.close()
    start = time.perf_counter()
    batch = usearch.search(queries, K, exact=True, threads=2)
    methods["usearch Index.search exact, all queries in one call (2 threads)"] = {
        "ms_per_query": round((time.perf_counter() - start) * 1e3 / QUERIES, 3),
        "recall@10": recall(db64, queries, list(batch.keys), kth)}

    faiss_best = min(v["ms_per_query"] for k, v in methods.items() if k.startswith("faiss"))
    ours = methods["edgembed Index.hamming_neighbours (exact scan)"]["ms_per_query"]
    return {"n": n, "n_queries": QUERIES, "k": K, "methods": methods,
            "edgembed_vs_best_faiss": round(ours / faiss_best, 3), "target": 1.5}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", required=True, help=".npy of real float32 embeddings")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    docs = np.load(args.vectors)
    result = run(docs, args.n)
    versions = {name: importlib.metadata.version(name)
                for name in ("usearch", "simsimd", "faiss-cpu", "numpy", "numkong")
                if _installed(name)}
    report = {**result, "versions": versions, "machine": machine_info(),
              "python": platform.python_version(), "load_average": os.getloadavg(),
              "command": "python -m edgembed.bench.hamming " + " ".join(sys.argv[1:]),
              "codes": f"sign bits of Gaussian draws with the mean and covariance of "
                       f"{len(docs)} real embeddings ({Path(args.vectors).name})",
              "timing": "one query per call, median ms over the queries"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report["methods"], indent=1))


def _installed(name: str) -> bool:
    try:
        importlib.metadata.version(name)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


if __name__ == "__main__":
    main()
