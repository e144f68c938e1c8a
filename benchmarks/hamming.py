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
from .search import (
    K,
    faiss_flat_searches,
    gaussian_draws,
    kth_distances,
    numpy_topk,
    recall,
    synthetic_codes,
    time_side_by_side,
    usearch_exact_searches,
)

QUERIES = 100


def run(docs: np.ndarray, n: int, seed: int = 0) -> dict[str, Any]:
    from usearch.index import MetricKind, search

    from edgembed import Encoder, Index

    mean, cov = docs.mean(axis=0), np.cov(docs, rowvar=False)
    query_vectors = next(gaussian_draws(mean, cov, QUERIES, seed + 1))
    queries = C.pack_signs(query_vectors)
    codes = synthetic_codes(mean, cov, n, seed + 10)
    db64 = codes.view(np.uint64)
    kth = kth_distances(db64, queries)
    # Everything is built first and timed together, the methods taking turns query by
    # query (`time_side_by_side`), so the machine's slow phases fall on all of them alike;
    # numpy runs last in each turn (see `faiss_flat_searches`).
    with tempfile.TemporaryDirectory(prefix="edgembed-hamming-") as tmp:
        encoder = Encoder.load(threads=1)
        index = Index.create(Path(tmp) / "index", encoder)
        zeros = np.zeros((100_000, docs.shape[1]), np.int8)
        for start in range(0, n, 100_000):
            part = codes[start:start + 100_000]
            index.add_codes(part, zeros[:len(part)], ids=list(range(start, start + len(part))))
        usearch, usearch_searches, _ = usearch_exact_searches(codes, [1, 2])
        faiss_searches, _ = faiss_flat_searches(codes, [1, 2])
        by_code: dict[str, Callable[[np.ndarray], Any]] = {
            **usearch_searches,
            "usearch.index.search exact=True on the codes matrix (2 threads)":
                lambda q: np.atleast_2d(search(codes, q[None], K, MetricKind.Hamming,
                                               exact=True, threads=2).keys)[0],
            **faiss_searches,
            "numpy (XOR, popcount, sum, partition; 1 thread)": lambda q: numpy_topk(db64, q)[0]}
        searches: dict[str, Callable[[int], Any]] = {  # each answers query number i
            "edgembed Index.hamming_neighbours (exact scan)":
                lambda i: index.hamming_neighbours(query_vectors[i], K)[0][:K].astype(np.int64),
            **{name: (lambda i, s=method: s(queries[i])) for name, method in by_code.items()}}
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
