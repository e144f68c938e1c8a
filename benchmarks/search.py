"""Binary-code search benchmark: exact Hamming top-10 (usearch, FAISS, numpy) over N
synthetic 384-bit codes, and usearch HNSW recall against exact on real embeddings.

Run in its own process (`python -m edgembed.bench.search JOB.json`) so that FAISS's and
onnxruntime's thread pools never share one. Synthetic codes are the sign bits of Gaussian
vectors with the mean and covariance of real embeddings: each bit keeps its real bias and
each pair of bits its real correlation (`bit_statistics` reports both, real and synthetic).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgembed.codes import pack_signs
from edgembed.index import scan

K = 10


def gaussian_draws(mean: np.ndarray, cov: np.ndarray, n: int, seed: int,
                   chunk: int = 100_000) -> Iterator[np.ndarray]:
    """n float32 draws from N(mean, cov), `chunk` rows at a time: a million rows of 384
    floats would take 1.5 GB at once, their sign codes 48 MB."""
    rng = np.random.default_rng(seed)
    factor = np.linalg.cholesky(cov + 1e-6 * np.eye(len(mean))).astype(np.float32)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        yield rng.standard_normal((rows, len(mean)), dtype=np.float32) @ factor.T + mean


def synthetic_codes(mean: np.ndarray, cov: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sign codes of n draws from N(mean, cov)."""
    return np.concatenate([pack_signs(draws) for draws in gaussian_draws(mean, cov, n, seed)])


def bit_statistics(codes: np.ndarray, sample: int = 5000) -> dict:
    """Mean |P(bit) - 0.5| and mean |correlation| between bit pairs, on a sample."""
    bits = np.unpackbits(codes[:sample], axis=1).astype(np.float32)
    bias = float(np.mean(np.abs(bits.mean(axis=0) - 0.5)))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(bits, rowvar=False)
    upper = np.abs(corr[np.triu_indices_from(corr, k=1)])
    return {"mean_bit_bias": round(bias, 4),
            "mean_abs_pair_correlation": round(float(np.nanmean(upper)), 4)}


def numpy_topk(db64: np.ndarray, query: np.ndarray, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """xor + popcount over 64-bit words, then a partial sort."""
    distances = np.bitwise_count(db64 ^ query.view(np.uint64)).sum(axis=1, dtype=np.int32)
    top = np.argpartition(distances, k)[:k]
    order = np.argsort(distances[top], kind="stable")
    return top[order], distances[top[order]]


def kth_distances(db64: np.ndarray, queries: np.ndarray, k: int = K) -> np.ndarray:
    return np.array([numpy_topk(db64, q, k)[1][-1] for q in queries])


def time_side_by_side(searches: dict[str, Callable[[np.ndarray], np.ndarray]],
                      queries: np.ndarray) -> dict[str, tuple[float, list[np.ndarray]]]:
    """Median milliseconds per single-query call of each search, and each call's result
    keys. The searches take turns query by query, so a slow phase of the machine (these
    VMs drift by 2× within a minute) falls on all of them alike and their ratios hold."""
    for search in searches.values():
        search(queries[0])  # warm-up
    times: dict[str, list[float]] = {name: [] for name in searches}
    results: dict[str, list[np.ndarray]] = {name: [] for name in searches}
    for query in queries:
        for name, search in searches.items():
            start = time.perf_counter()
            results[name].append(np.asarray(search(query)))
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: (float(np.median(times[name])), results[name]) for name in searches}


def time_queries(search: Callable[[np.ndarray], np.ndarray],
                 queries: np.ndarray) -> tuple[float, list[np.ndarray]]:
    """Median milliseconds per single-query call, and each call's result keys."""
    return time_side_by_side({"": search}, queries)[""]


def recall(db64: np.ndarray, queries: np.ndarray, results: list[np.ndarray],
           kth: np.ndarray) -> float:
    """Recall@10 against exact search, tie-aware: a returned code counts if it is within
    the exact 10th-nearest distance (Hamming distances tie often; any tied code is as good)."""
    hits = []
    for query, keys, limit in zip(queries, results, kth, strict=True):
        keys = np.asarray(keys, dtype=np.int64)[:K]
        found = np.bitwise_count(db64[keys] ^ query.view(np.uint64)).sum(axis=1)
        hits.append(min(int(np.sum(found <= limit)), K) / K)
    return round(float(np.mean(hits)), 4)


def usearch_index(codes: np.ndarray, threads: int, graph: bool = True):
    """An HNSW index (usearch defaults), or with `graph=False` the cheapest graph usearch
    allows (connectivity 2, expansion_add 1): storage for exact search, built ~40× faster."""
    from usearch.index import Index

    shape = {} if graph else {"connectivity": 2, "expansion_add": 1}
    index = Index(ndim=codes.shape[1] * 8, metric="hamming", dtype="b1", **shape)
    start = time.perf_counter()
    index.add(np.arange(len(codes)), codes, threads=threads)
    return index, time.perf_counter() - start


def hnsw_sweep(index, db64: np.ndarray, queries: np.ndarray, kth: np.ndarray,
               efs: list[int]) -> list[dict]:
    rows = []
    for ef in efs:
        index.expansion_search = ef
        ms, results = time_queries(lambda q: index.search(q, K, threads=1).keys, queries)
        rows.append({"expansion_search": ef, "ms_per_query": round(ms, 4),
                     "qps": round(1000 / ms, 1), "recall@10": recall(db64, queries, results, kth)})
    return rows


def free_function_check(codes: np.ndarray, queries: np.ndarray) -> dict:
    """usearch 2.23's `usearch.index.search(..., exact=True)` on packed uint8 rows: does it
    return the true Hamming top-10? (It reads the bytes as 48 uint8 dimensions.)"""
    from usearch.index import search

    db64 = codes.view(np.uint64)
    truth = np.array([numpy_topk(db64, q)[1] for q in queries[:5]])
    packed = search(codes, queries[:5], K, "hamming", exact=True).distances
    unpacked = search(np.unpackbits(codes, axis=1).astype(bool),
                      np.unpackbits(queries[:5], axis=1).astype(bool), K, "hamming",
                      exact=True).distances
    return {"packed_uint8_correct": bool(np.array_equal(np.sort(packed, axis=1), truth)),
            "bool_rows_correct": bool(np.array_equal(np.sort(unpacked, axis=1), truth))}


def _threads(count: int) -> str:
    return f"{count} thread{'s' if count > 1 else ''}"


def usearch_exact_searches(codes: np.ndarray, pools: Sequence[int]) -> tuple[
        Any, dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, dict]]:
    """usearch's exact search on an index holding `codes`, one search per thread count
    (each taking one packed query); returns the index too, with its size and build time."""
    index, build = usearch_index(codes, max(pools), graph=False)
    meta = {"bytes_per_vector": round(index.memory_usage / len(codes), 1),
            "build_s": round(build, 3)}
    searches = {f"usearch exact ({_threads(pool)})":
                (lambda q, p=pool: index.search(q, K, exact=True, threads=p).keys)
                for pool in pools}
    return index, searches, {name: meta for name in searches}


def faiss_flat_searches(codes: np.ndarray, pools: Sequence[int]
                        ) -> tuple[dict[str, Callable[[np.ndarray], np.ndarray]], dict[str, dict]]:
    """FAISS `IndexBinaryFlat` over `codes`, one search per thread count, with its size and
    build time. Raises ImportError without faiss. FAISS's OpenMP workers spin for
    milliseconds after each call, slowing whatever runs next on the other core: time numpy
    (one thread, the slowest) after these, not a scan."""
    import faiss

    start = time.perf_counter()
    flat = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    flat.add(codes)
    meta = {"bytes_per_vector": flat.code_size, "build_s": round(time.perf_counter() - start, 3)}
    searches = {f"faiss IndexBinaryFlat ({_threads(pool)})":
                (lambda q, p=pool: (faiss.omp_set_num_threads(p), flat.search(q[None], K)[1][0])[1])
                for pool in pools}
    return searches, {name: meta for name in searches}


def exact_at(codes: np.ndarray, queries: np.ndarray, threads: int, efs: list[int],
             hnsw_max: int) -> dict:
    """Every exact method on the same codes and queries, checked against numpy."""
    db64 = codes.view(np.uint64)
    kth = kth_distances(db64, queries)

    # Built first, timed together; numpy runs last in each turn (see `faiss_flat_searches`).
    searches: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    meta: dict[str, dict] = {}
    start = time.perf_counter()
    exact = scan.CodeScan(codes)
    searches["edgembed exact scan"] = lambda q: exact.nearest(q, K, threads=scan.THREADS)[0][:K]
    meta["edgembed exact scan"] = {"threads": scan.THREADS, "bytes_per_vector": codes.shape[1],
                                   "build_s": round(time.perf_counter() - start, 3)}
    pools = sorted({1, threads})
    index, usearch_searches, usearch_meta = usearch_exact_searches(codes, pools)
    searches.update(usearch_searches)
    meta.update(usearch_meta)
    skipped: dict[str, dict] = {}
    try:
        faiss_searches, faiss_meta = faiss_flat_searches(codes, pools)
    except ImportError:
        skipped["faiss IndexBinaryFlat"] = {"skipped": "faiss is not installed"}
    else:
        searches.update(faiss_searches)
        meta.update(faiss_meta)
    searches["numpy"] = lambda q: numpy_topk(db64, q)[0]
    meta["numpy"] = {"bytes_per_vector": codes.shape[1], "build_s": 0.0}

    methods: dict[str, dict] = {}
    for name, (ms, results) in time_side_by_side(searches, queries).items():
        checked = {} if name == "numpy" else {"recall@10": recall(db64, queries, results, kth)}
        methods[name] = {"ms_per_query": round(ms, 4), "qps": round(1000 / ms, 1),
                         **checked, **meta[name]}
    methods.update(skipped)
    del index
    if len(codes) > hnsw_max:
        hnsw = {"skipped": f"HNSW is built up to {hnsw_max:,} codes in this run (its build "
                           "time grows faster than N; see the smaller N)"}
    else:
        index, build = usearch_index(codes, threads)
        hnsw = {"build_s": round(build, 2), "threads": threads,
                "bytes_per_vector": round(index.memory_usage / len(codes), 1),
                "sweep": hnsw_sweep(index, db64, queries, kth, efs)}
    return {"n": len(codes), "n_queries": len(queries), "exact": methods, "hnsw": hnsw}


def run(job: dict) -> dict:
    vectors = np.load(job["vectors"])
    docs, queries = vectors["docs"], vectors["queries"]
    efs, threads, seed = job["expansion_search"], job["threads"], job.get("seed", 0)

    real_codes, real_queries = pack_signs(docs), pack_signs(queries)
    real_db64 = real_codes.view(np.uint64)
    kth = kth_distances(real_db64, real_queries)
    index, build = usearch_index(real_codes, threads)
    real = {"n": len(real_codes), "n_queries": len(real_queries), "texts": job["texts"],
            "build_s": round(build, 3), "bit_statistics": bit_statistics(real_codes),
            "hnsw": hnsw_sweep(index, real_db64, real_queries, kth, efs)}

    mean = docs.mean(axis=0)
    cov = np.cov(docs, rowvar=False)
    synthetic_queries = synthetic_codes(mean, cov, job["n_queries"], seed + 1)
    scales = []
    for n in job["sizes"]:
        codes = synthetic_codes(mean, cov, n, seed)
        row = exact_at(codes, synthetic_queries, threads, efs, job["hnsw_max"])
        if not scales:
            row["bit_statistics"] = bit_statistics(codes)
            row["usearch_free_function"] = free_function_check(codes, synthetic_queries)
        scales.append(row)
        del codes
    return {"real": real, "synthetic": scales, "threads": threads,
            "synthetic_how": "sign bits of Gaussian draws with the mean and covariance of the "
                             f"real embeddings ({job['texts']}); queries drawn the same way",
            "timing": "one query per call, the exact methods taking turns query by query; "
                      "median ms over the queries (QPS = 1000 / ms)"}


def main() -> None:
    job = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    print(json.dumps(run(job)), flush=True)


if __name__ == "__main__":
    main()
