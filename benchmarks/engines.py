"""Vector database engines against edgembed's own index, on a BEIR dataset (SciFact).

    python -m edgembed.bench.engines --data BEIR_DIR --out FILE.json [--cache DIR]

Every system holds the same sign codes and int8 vectors and answers the same queries
with the same cascade (Hamming pool → asymmetric refinement → int8 rescoring, k=10,
rescore=4): edgembed's `Index` does all three itself; with an engine, the engine finds the
Hamming pool and edgembed refines and rescores what it returns. Reported per system: load
time (from the edgembed index to a searchable engine), nDCG@10 and recall@100, the share of
edgembed's own top 10 it returns, median query latency (query encoding excluded), and the
installed size of the engine's packages. Engines that are not installed are skipped.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgembed import Encoder, Index
from edgembed import codes as C
from edgembed.eval.beir import load_beir, ndcg_at_k, recall_at_k
from edgembed.eval.evaluate import _embed
from edgembed.index import cascade

from .machine import machine_info

K, RESCORE = 10, 4
LATENCY_QUERIES = 200
# the distributions each engine installs beyond edgembed's runtime (pyarrow is shared with
# the ray extra, so it is listed on its own)
ENGINE_DISTRIBUTIONS = {
    "lancedb": ["lancedb", "pylance", "lance-namespace", "lance-namespace-urllib3-client",
                "deprecation", "overrides", "pydantic", "pydantic-core"],
    "milvus-lite": ["milvus-lite", "pymilvus", "grpcio", "protobuf", "pandas", "ujson",
                    "python-dotenv", "setuptools"],
}


def installed_mb(names: list[str]) -> dict[str, Any]:
    """Installed size of these distributions (their recorded files), in MB."""
    sizes = {}
    for name in names:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        total = 0
        for file in dist.files or []:
            path = Path(dist.locate_file(file))
            if path.is_file():
                total += path.stat().st_size
        sizes[f"{name}=={dist.version}"] = round(total / 1e6, 1)
    return {"packages": sizes, "total_mb": round(sum(sizes.values()), 1)}


def _timed_queries(search: Callable[[np.ndarray], list[Any]],
                   queries: np.ndarray) -> tuple[list[list[str]], float]:
    ranked, times = [], []
    for number, vector in enumerate(queries):
        start = time.perf_counter()
        ids = search(vector)
        if number < LATENCY_QUERIES:
            times.append((time.perf_counter() - start) * 1e3)
        ranked.append([str(i) for i in ids])
    return ranked, float(np.median(times))


def _quality(data: Any, ranked10: list[list[str]], ranked100: list[list[str]],
             reference10: list[list[str]] | None) -> dict[str, Any]:
    out = {"ndcg@10": round(ndcg_at_k(ranked10, data.query_ids, data.qrels, 10), 4),
           "recall@100": round(recall_at_k(ranked100, data.query_ids, data.qrels, 100), 4)}
    if reference10 is not None:
        out["top10_overlap_with_edgembed"] = round(float(np.mean(
            [len(set(a) & set(b)) / max(len(b), 1)
             for a, b in zip(ranked10, reference10, strict=True)])), 4)
    return out


def run_edgembed(index: Index, data: Any, queries: np.ndarray) -> dict[str, Any]:
    def search(k: int) -> Callable[[np.ndarray], list[Any]]:
        return lambda q: [hit.id for hit in index.search_vectors(q, k, rescore=RESCORE)[0]]

    ranked10, ms = _timed_queries(search(K), queries)
    ranked100, _ = _timed_queries(search(100), queries)
    return {"system": "edgembed Index (exact)", "ms_per_query": round(ms, 3),
            **_quality(data, ranked10, ranked100, None)}, ranked10


def run_lancedb(index_path: Path, tmp: Path, data: Any, queries: np.ndarray,
                reference: list[list[str]], encoder: Encoder,
                partitions: int | None) -> dict[str, Any]:
    try:
        import lancedb  # noqa: F401

        from edgembed.index.lance import LanceIndex, export_index
    except ImportError as exc:
        return {"system": "lancedb", "skipped": f"not installed ({exc.name})"}
    uri = f"lancedb:{tmp / ('lance-ivf' if partitions else 'lance')}"
    start = time.perf_counter()
    export_index(index_path, uri, ivf_partitions=partitions, show_progress=False)
    load_s = time.perf_counter() - start
    table = LanceIndex(uri, encoder)

    def search(k: int) -> Callable[[np.ndarray], list[Any]]:
        return lambda q: [hit.id for hit in table.search_vectors(q, k, rescore=RESCORE)[0]]

    ranked10, ms = _timed_queries(search(K), queries)
    ranked100, _ = _timed_queries(search(100), queries)
    import lancedb

    name = f"LanceDB {lancedb.__version__} " + \
        (f"IVF_FLAT hamming, {partitions} partitions (default nprobes)" if partitions
         else "flat hamming scan")
    return {"system": name, "load_s": round(load_s, 3), "ms_per_query": round(ms, 3),
            **_quality(data, ranked10, ranked100, reference),
            "install": installed_mb(ENGINE_DISTRIBUTIONS["lancedb"]),
            "pyarrow_mb": installed_mb(["pyarrow"])["total_mb"]}


def run_milvus(index: Index, tmp: Path, data: Any, queries: np.ndarray,
               reference: list[list[str]]) -> dict[str, Any]:
    """Milvus Lite (a local Milvus server process started by pymilvus for a .db file):
    BINARY_VECTOR codes, BIN_FLAT index, HAMMING metric; int8 vectors in a VARCHAR field."""
    try:
        from pymilvus import DataType, MilvusClient
    except ImportError as exc:
        return {"system": "milvus-lite", "skipped": f"not installed ({exc.name})"}
    version = importlib.metadata.version("milvus-lite")
    start = time.perf_counter()
    try:
        client = MilvusClient(str(tmp / "milvus.db"))
        schema = client.create_schema(auto_id=False)
        schema.add_field("key", DataType.INT64, is_primary=True)
        schema.add_field("code", DataType.BINARY_VECTOR, dim=index.dim)
        schema.add_field("int8", DataType.VARCHAR, max_length=4 * index.dim)
        params = client.prepare_index_params()
        params.add_index(field_name="code", index_type="BIN_FLAT", metric_type="HAMMING")
        client.create_collection("passages", schema=schema, index_params=params)
    except Exception as exc:  # the engine's own refusal is the finding
        return {"system": f"Milvus Lite {version}", "skipped": str(exc)[:300]}
    keys, codes, int8 = index._keys, index._codes, index._int8
    for first in range(0, len(keys), 2000):
        client.insert("passages", [
            {"key": int(keys[i]), "code": codes[i].tobytes(),
             "int8": base64.b64encode(int8[i].tobytes()).decode()}
            for i in range(first, min(first + 2000, len(keys)))])
    client.load_collection("passages")
    load_s = time.perf_counter() - start
    ids = index.store.fetch(keys.tolist())

    def search(k: int) -> Callable[[np.ndarray], list[Any]]:
        keep, pool = cascade.pool_sizes(k, RESCORE)
        fetch = cascade.fetch_size(pool, len(keys))

        def one(vector: np.ndarray) -> list[Any]:
            found = client.search("passages", data=[C.pack_signs(vector).tobytes()],
                                  anns_field="code", limit=fetch, output_fields=["int8"],
                                  search_params={"metric_type": "HAMMING"})[0]
            distances = np.array([hit["distance"] for hit in found])
            order = np.argsort(distances, kind="stable")
            order = cascade.with_ties(order, distances[order], len(order), pool).astype(int)
            hit_keys = np.array([found[i]["id"] for i in order], np.int64)
            rows = np.searchsorted(keys, hit_keys)
            kept, _ = cascade.refine(vector, codes, rows, keep)
            vectors = np.stack([np.frombuffer(base64.b64decode(found[order[j]]["entity"]["int8"]),
                                              np.int8) for j in range(len(order))])
            position = {int(r): j for j, r in enumerate(rows)}
            local = np.array([position[int(r)] for r in kept])
            best, _ = cascade.rescore_int8(vector, vectors, local, index.ranges, k)
            return [ids[int(hit_keys[j])][0] for j in best]

        return one

    ranked10, ms = _timed_queries(search(K), queries)
    ranked100, _ = _timed_queries(search(100), queries)
    client.close()
    return {"system": f"Milvus Lite {version} BIN_FLAT hamming", "load_s": round(load_s, 3),
            "ms_per_query": round(ms, 3), **_quality(data, ranked10, ranked100, reference),
            "install": installed_mb(ENGINE_DISTRIBUTIONS["milvus-lite"])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, metavar="BEIR_DIR")
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--cache", metavar="DIR", help="embeddings cache (as edgembed eval)")
    parser.add_argument("--ivf-partitions", type=int, default=64)
    args = parser.parse_args(argv)
    encoder = Encoder.load()
    data = load_beir(args.data)
    docs, queries = _embed(encoder, data, Path(args.data).expanduser(), "test",
                           Path(args.cache) if args.cache else None)
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgembed-engines-") as name:
        tmp = Path(name)
        start = time.perf_counter()
        index = Index.create(tmp / "index", encoder)
        index.add_vectors(docs, ids=data.doc_ids)
        index.save()
        load_s = time.perf_counter() - start
        own, reference = run_edgembed(index, data, queries)
        rows.append({**own, "load_s": round(load_s, 3)})
        rows.append(run_lancedb(tmp / "index", tmp, data, queries, reference, encoder, None))
        rows.append(run_lancedb(tmp / "index", tmp, data, queries, reference, encoder,
                                args.ivf_partitions))
        rows.append(run_milvus(index, tmp, data, queries, reference))
        index.close()
    report = {"data": Path(args.data).name, "n_docs": len(docs), "n_queries": len(queries),
              "k": K, "rescore": RESCORE, "package_id": encoder.package.package_id,
              "machine": machine_info(), "python": platform.python_version(),
              "timing": "median ms per query over the first "
                        f"{LATENCY_QUERIES} queries, query encoding excluded, one process",
              "systems": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
