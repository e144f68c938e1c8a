"""Bulk embedding on a local Ray cluster against one process, on a BEIR corpus (SciFact).

    python -m edgembed.bench.scale --data BEIR_DIR --out FILE.json [--cache DIR]

1. **One process**: `Encoder.encode` of the corpus (from `--cache` when `edgembed eval`
   cached it), an exact `Index`, nDCG@10 of binary + int8 rescoring (k=10, rescore=4).
2. **Ray**: `embed_to_parquet` of corpus.jsonl (``_id``; ``title`` + ``text``) on
   ``ray.init(num_cpus=CPUS)``, `build_shards` into 3 shards, nDCG@10 through
   `ShardedIndex` with the same queries; the vectors and rankings are compared.
3. **Throughput** of `--throughput-docs` documents per configuration: one process at 1 and
   at all threads, and Ray with actors × threads = CPUs, and oversubscribed.
4. **Bytes per passage** of every column of the Parquet files and every file of a shard.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgembed import Encoder, Index
from edgembed.eval.beir import load_beir, ndcg_at_k
from edgembed.eval.evaluate import _embed

from .machine import machine_info

K, RESCORE = 10, 4


def _ndcg(data: Any, hits: list[list[Any]]) -> float:
    return round(ndcg_at_k([[h.id for h in row] for row in hits], data.query_ids, data.qrels,
                           10), 4)


def _parquet_bytes(folder: Path) -> dict[str, float]:
    """Compressed bytes per row of each column, over every part file."""
    import pyarrow.parquet as pq

    totals: dict[str, int] = {}
    rows = 0
    for path in sorted(folder.glob("part-*.parquet")):
        meta = pq.read_metadata(path)
        rows += meta.num_rows
        for group in range(meta.num_row_groups):
            info = meta.row_group(group)
            for column in range(info.num_columns):
                chunk = info.column(column)
                name = chunk.path_in_schema.split(".")[0]
                totals[name] = totals.get(name, 0) + chunk.total_compressed_size
    return {name: round(size / rows, 1) for name, size in totals.items()}


def _shard_bytes(shard: Path) -> dict[str, float]:
    index = Index.open(shard, view=True)
    count = len(index)
    index.close()
    sizes = {path.name: path.stat().st_size for path in shard.glob("gen-*/*")}
    sizes["docs.sqlite"] = (shard / "docs.sqlite").stat().st_size
    return {name: round(size / count, 1) for name, size in sizes.items()}


def _throughput(texts: list[str], corpus: Path, tmp: Path, cpus: int) -> list[dict[str, Any]]:
    """Documents per second of several ways to spend the same CPUs."""
    from edgembed.distributed import Fields, embed_to_parquet
    from edgembed.distributed.embed import embed_longest_first

    rows = []
    for threads in sorted({1, cpus}):
        encoder = Encoder.load(threads=threads)
        embed_longest_first(encoder, texts[:64], 32)  # warm up
        start = time.perf_counter()
        embed_longest_first(encoder, texts, 32)
        seconds = time.perf_counter() - start
        rows.append({"config": f"one process, {threads} thread(s)", "cpus": threads,
                     "docs_per_s": round(len(texts) / seconds, 1),
                     "docs_per_s_per_cpu": round(len(texts) / seconds / threads, 1)})
    configs = [(cpus, 1, None), (1, cpus, None)] + ([(cpus, 1, cpus)] if cpus > 1 else [])
    for actors, cpus_per_actor, threads in configs:
        out = tmp / f"throughput-{actors}x{cpus_per_actor}-{threads}"
        report = embed_to_parquet([corpus], out, actors=actors, cpus_per_actor=cpus_per_actor,
                                  threads=threads, fields=Fields(), keep_text=False,
                                  part_bytes=64 << 10, show_progress=False)
        used = threads or cpus_per_actor
        rows.append({
            "config": f"Ray, {actors} actor(s) × {cpus_per_actor} CPU, {used} thread(s) each"
                      + (" (oversubscribed)" if actors * used > cpus else ""),
            "cpus": actors * cpus_per_actor, "wall_s": round(report.seconds, 2),
            "docs_per_s": round(report.rows / report.seconds, 1),
            "actors_docs_per_s": [round(a.rows_per_s, 1) for a in report.actors],
            "docs_per_s_per_cpu": round(sum(a.rows_per_s for a in report.actors)
                                        / (actors * cpus_per_actor), 1)})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, metavar="BEIR_DIR")
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--cache", metavar="DIR")
    parser.add_argument("--cpus", type=int, default=2, help="Ray cluster CPUs (default 2)")
    parser.add_argument("--throughput-docs", type=int, default=600)
    args = parser.parse_args(argv)
    import ray

    from edgembed.distributed import Fields, embed_to_parquet
    from edgembed.index.shards import ShardedIndex, build_shards

    data_dir = Path(args.data).expanduser()
    data = load_beir(data_dir)
    encoder = Encoder.load()
    single_docs, queries = _embed(encoder, data, data_dir, "test",
                                  Path(args.cache) if args.cache else None)
    report: dict[str, Any] = {"data": data_dir.name, "n_docs": len(data.doc_ids),
                              "n_queries": len(data.query_ids), "k": K, "rescore": RESCORE,
                              "package_id": encoder.package.package_id,
                              "machine": machine_info(), "load_average": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="edgembed-scale-") as name:
        tmp = Path(name)
        single = Index.create(tmp / "single", encoder)
        single.add_vectors(single_docs, ids=data.doc_ids, texts=data.doc_texts)
        single.save()
        single_hits = single.search_vectors(queries, K, rescore=RESCORE)
        report["single_process"] = {"ndcg@10": _ndcg(data, single_hits)}

        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        out = tmp / "parquet"
        fields = Fields(id_field="_id", text_fields=("title", "text"))
        run = embed_to_parquet([data_dir / "corpus.jsonl"], out, fields=fields,
                               show_progress=False)
        shards = build_shards(out, tmp / "shards", encoder=encoder,
                              rows_per_shard=-(-len(data.doc_ids) // 3), show_progress=False)
        with ShardedIndex.open(tmp / "shards", encoder=encoder) as sharded:
            ray_hits = sharded.search_vectors(queries, K, rescore=RESCORE)
        from edgembed.distributed import parquet_files, read_batches

        ids, vectors = [], []
        for _, batch in read_batches(parquet_files(out)):
            ids += batch.ids
            vectors.append(batch.float32)
        ray_docs = np.concatenate(vectors)
        same_order = ids == data.doc_ids
        report["ray"] = {
            "command": f"edgembed embed {data_dir / 'corpus.jsonl'} --ray -o OUT/ --id-field "
                       "_id --text-field title --text-field text; edgembed shards OUT/ --out "
                       f"SHARDS/ --rows-per-shard {-(-len(data.doc_ids) // 3)}",
            "cluster_cpus": args.cpus, "run": run.to_json(), "shards": len(shards),
            "ndcg@10": _ndcg(data, ray_hits),
            "rows_in_corpus_order": same_order,
            "max_abs_vector_difference": float(np.abs(ray_docs - single_docs).max())
            if same_order else None,
            "identical_top10": float(np.mean([[h.id for h in a] == [h.id for h in b]
                                              for a, b in zip(single_hits, ray_hits,
                                                              strict=True)])),
            "bytes_per_passage_parquet": _parquet_bytes(out),
            "bytes_per_passage_shard": _shard_bytes(shards[0]),
        }
        report["ndcg@10_equal"] = report["ray"]["ndcg@10"] == report["single_process"]["ndcg@10"]
        subset = tmp / "subset.jsonl"
        texts = data.doc_texts[:args.throughput_docs]
        subset.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                                  for i, t in enumerate(texts)), encoding="utf-8")
        report["throughput"] = _throughput(texts, subset, tmp, args.cpus)
        report["throughput_docs"] = len(texts)
        single.close()
        ray.shutdown()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: report[k] for k in ("single_process", "ndcg@10_equal")}),
          json.dumps(report["ray"]["ndcg@10"]), json.dumps(report["throughput"], indent=1))


if __name__ == "__main__":
    main()
