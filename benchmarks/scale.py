"""Bulk embedding on a local Ray cluster against one process, on a BEIR corpus (SciFact).

    python -m edgembed.bench.scale --data BEIR_DIR --out FILE.json [--cache DIR]
        [--part all|scifact|throughput|lengths] [--rounds N] [--throughput-docs N]

1. **One process**: `Encoder.encode` of the corpus (from `--cache` when `edgembed eval`
   cached it), an exact `Index`, nDCG@10 of binary + int8 rescoring (k=10, rescore=4).
2. **Ray**: `embed_to_parquet` of corpus.jsonl (``_id``; ``title`` + ``text``) on
   ``ray.init(num_cpus=CPUS)``, `build_shards` into shards of a third of the corpus, nDCG@10 through
   `ShardedIndex` with the same queries; the vectors and rankings are compared.
3. **Throughput** of `--throughput-docs` documents per configuration: one process at 1 and
   at all threads, and Ray with actors × threads = CPUs, and oversubscribed.
4. **Bytes per passage** of every column of the Parquet files and every file of a shard.
5. ``--part lengths`` alone: passages per CPU-second at one thread, short sentences against
   SciFact abstracts.
6. ``--part shards`` alone (no Ray): the one-process vectors in one index and in three
   shards, nDCG@10 and milliseconds per query of every search mode (dense, keyword,
   hybrid) through each.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
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


def _throughput(texts: list[str], corpus: Path, tmp: Path, cpus: int,
                rounds: int) -> list[dict[str, Any]]:
    """Documents per second (wall) and per CPU-second of several ways to spend the same
    CPUs, `rounds` times in rotating order; medians. Per CPU-second is the steadier figure
    on a machine shared with other work; wall time shows what oversubscription costs."""
    from edgembed.distributed import Fields, embed_to_parquet
    from edgembed.distributed.embed import embed_longest_first

    configs: list[tuple[str, Any]] = []
    for threads in sorted({1, cpus}):
        configs.append((f"one process, {threads} thread(s)", ("process", threads)))
    ray_configs = [(cpus, 1, None), (1, cpus, None)] + ([(cpus, 1, cpus)] if cpus > 1 else [])
    for actors, per_actor, threads in ray_configs:
        used = threads or per_actor
        name = f"Ray, {actors} actor(s) × {per_actor} CPU, {used} thread(s) each" + \
            (" (oversubscribed)" if actors * used > cpus else "")
        configs.append((name, ("ray", actors, per_actor, threads)))
    measured: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in configs}
    encoders = {}
    for round_number in range(rounds):
        for offset in range(len(configs)):
            name, spec = configs[(round_number + offset) % len(configs)]
            if spec[0] == "process":
                encoder = encoders.get(spec[1]) or Encoder.load(threads=spec[1])
                if spec[1] not in encoders:
                    embed_longest_first(encoder, texts[:64], 32)  # warm up
                    encoders[spec[1]] = encoder
                start, cpu = time.perf_counter(), time.process_time()
                embed_longest_first(encoder, texts, 32)
                wall, cpu = time.perf_counter() - start, time.process_time() - cpu
                measured[name].append((len(texts) / wall, len(texts) / cpu))
                continue
            _, actors, per_actor, threads = spec
            out = tmp / f"throughput-{round_number}-{actors}x{per_actor}-{threads}"
            report = embed_to_parquet([corpus], out, actors=actors, cpus_per_actor=per_actor,
                                      threads=threads, fields=Fields(), keep_text=False,
                                      part_bytes=64 << 10, show_progress=False)
            measured[name].append((sum(a.rows_per_s for a in report.actors),
                                   report.rows / sum(a.cpu_s for a in report.actors)))
    rows = []
    for name, spec in configs:
        cpus_used = spec[1] if spec[0] == "process" else spec[1] * spec[2]
        wall = float(np.median([m[0] for m in measured[name]]))
        per_cpu_s = float(np.median([m[1] for m in measured[name]]))
        rows.append({"config": name, "cpus": cpus_used, "docs_per_s": round(wall, 1),
                     "docs_per_s_per_cpu": round(wall / cpus_used, 1),
                     "docs_per_cpu_second": round(per_cpu_s, 1),
                     "rounds": [[round(w, 1), round(c, 1)] for w, c in measured[name]]})
    return rows


def _per_length(corpus_texts: list[str], rounds: int) -> list[dict[str, Any]]:
    """Passages per CPU-second of one process at one thread, for short and for long
    passages: CPU time, so other work on the machine barely moves it."""
    from edgembed.distributed.embed import embed_longest_first
    from edgembed.export.texts import builtin_texts

    encoder = Encoder.load(threads=1)
    rows = []
    for name, texts in (("validation sentences", builtin_texts("validation")),
                        ("SciFact abstracts", corpus_texts)):
        tokens = encoder.count_tokens(texts)
        embed_longest_first(encoder, texts[:64], 32)  # warm up
        per_cpu_s = []
        for _ in range(rounds):
            start = time.process_time()
            embed_longest_first(encoder, texts, 32)
            per_cpu_s.append(len(texts) / (time.process_time() - start))
        rows.append({"texts": name, "n": len(texts), "mean_tokens": round(float(tokens.mean()), 1),
                     "passages_per_cpu_second": round(float(np.median(per_cpu_s)), 1),
                     "rounds": [round(v, 1) for v in per_cpu_s]})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, metavar="BEIR_DIR")
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--cache", metavar="DIR")
    parser.add_argument("--cpus", type=int, default=2, help="Ray cluster CPUs (default 2)")
    parser.add_argument("--throughput-docs", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--part", choices=("all", "scifact", "throughput", "lengths",
                                           "shards"), default="all")
    args = parser.parse_args(argv)
    import ray

    data_dir = Path(args.data).expanduser()
    data = load_beir(data_dir)
    encoder = Encoder.load()
    report: dict[str, Any] = {"data": data_dir.name, "n_docs": len(data.doc_ids),
                              "n_queries": len(data.query_ids), "k": K, "rescore": RESCORE,
                              "package_id": encoder.package.package_id,
                              "command": "python -m edgembed.bench.scale "
                                         + " ".join(argv if argv is not None else sys.argv[1:]),
                              "machine": machine_info(), "load_average": os.getloadavg()}
    if args.part == "lengths":
        report["per_length"] = _per_length(data.doc_texts[:args.throughput_docs], args.rounds)
        _write(report, args.out)
        return
    if args.part == "shards":
        with tempfile.TemporaryDirectory(prefix="edgembed-scale-") as name:
            report["modes"] = _modes_through_shards(data, data_dir, encoder, Path(name), args)
        _write(report, args.out)
        return
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    with tempfile.TemporaryDirectory(prefix="edgembed-scale-") as name:
        tmp = Path(name)
        if args.part in ("all", "scifact"):
            report.update(_scifact(data, data_dir, encoder, tmp, args))
        if args.part in ("all", "throughput"):
            subset = tmp / "subset.jsonl"
            texts = data.doc_texts[:args.throughput_docs]
            subset.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n"
                                      for i, t in enumerate(texts)), encoding="utf-8")
            report["throughput_docs"] = len(texts)
            report["throughput"] = _throughput(texts, subset, tmp, args.cpus, args.rounds)
    ray.shutdown()
    _write(report, args.out)


def _write(report: dict[str, Any], out: str) -> None:
    report["load_average_after"] = os.getloadavg()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({key: value for key, value in report.items() if key != "machine"},
                     indent=1))


def _ms_per_query(index: Any, data: Any, queries: np.ndarray, mode: str,
                  count: int = 100) -> float:
    """Median milliseconds of one search (query vector given: no encoding)."""
    times = []
    for i in range(min(count, len(queries))):
        start = time.perf_counter()
        index.search(data.query_texts[i], K, mode=mode, rescore=RESCORE, vectors=queries[i])
        times.append((time.perf_counter() - start) * 1e3)
    return round(float(np.median(times)), 2)


def _modes_through_shards(data: Any, data_dir: Path, encoder: Encoder, tmp: Path,
                          args: argparse.Namespace) -> dict[str, Any]:
    """The same vectors and texts in one index and in three shards (the corpus cut in
    thirds, in order): nDCG@10 per search mode through each, and how many queries get
    identical hits (ids, order and scores)."""
    from edgembed.index.shards import ShardedIndex

    docs, queries = _embed(encoder, data, data_dir, "test",
                           Path(args.cache) if args.cache else None)
    single = Index.create(tmp / "single", encoder)
    single.add_vectors(docs, ids=data.doc_ids, texts=data.doc_texts)
    single.save()
    shards, per_shard = [], -(-len(data.doc_ids) // 3)
    for number, start in enumerate(range(0, len(data.doc_ids), per_shard)):
        part = slice(start, start + per_shard)
        shard = Index.create(tmp / f"shard-{number}", encoder)
        shard.add_vectors(docs[part], ids=data.doc_ids[part], texts=data.doc_texts[part])
        shard.save()
        shards.append(shard)
    sharded = ShardedIndex(shards)
    out: dict[str, Any] = {"shards": len(shards), "rows_per_shard": per_shard}
    for mode in ("dense", "keyword", "hybrid"):
        one = single.search(data.query_texts, K, mode=mode, rescore=RESCORE, vectors=queries)
        many = sharded.search(data.query_texts, K, mode=mode, rescore=RESCORE,
                              vectors=queries)
        out[mode] = {"single_ndcg@10": _ndcg(data, one), "shards_ndcg@10": _ndcg(data, many),
                     "identical_hits": float(np.mean([
                         [(h.id, h.score) for h in a] == [(h.id, h.score) for h in b]
                         for a, b in zip(one, many, strict=True)])),
                     "ms_per_query_single": _ms_per_query(single, data, queries, mode),
                     "ms_per_query_shards": _ms_per_query(sharded, data, queries, mode)}
    sharded.close()
    single.close()
    return out


def _scifact(data: Any, data_dir: Path, encoder: Encoder, tmp: Path,
             args: argparse.Namespace) -> dict[str, Any]:
    """The corpus on Ray into shards against one process into one index: nDCG@10, vectors,
    rankings; and bytes per passage."""
    from edgembed.distributed import Fields, embed_to_parquet, parquet_files, read_batches
    from edgembed.index.shards import ShardedIndex, build_shards

    single_docs, queries = _embed(encoder, data, data_dir, "test",
                                  Path(args.cache) if args.cache else None)
    single = Index.create(tmp / "single", encoder)
    single.add_vectors(single_docs, ids=data.doc_ids, texts=data.doc_texts)
    single.save()
    single_hits = single.search_vectors(queries, K, rescore=RESCORE)
    single.close()
    out = tmp / "parquet"
    fields = Fields(id_field="_id", text_fields=("title", "text"))
    run = embed_to_parquet([data_dir / "corpus.jsonl"], out, fields=fields,
                           show_progress=False)
    per_shard = -(-len(data.doc_ids) // 3)
    shards = build_shards(out, tmp / "shards", encoder=encoder, rows_per_shard=per_shard,
                          show_progress=False)
    with ShardedIndex.open(tmp / "shards", encoder=encoder) as sharded:
        ray_hits = sharded.search_vectors(queries, K, rescore=RESCORE)
    ids, vectors = [], []
    for _, batch in read_batches(parquet_files(out)):
        ids += batch.ids
        vectors.append(batch.float32)
    ray_docs = np.concatenate(vectors)
    same_order = ids == data.doc_ids
    single_ndcg, ray_ndcg = _ndcg(data, single_hits), _ndcg(data, ray_hits)
    return {
        "single_process": {"ndcg@10": single_ndcg,
                           "how": "Encoder.encode of the corpus in one process (edgembed "
                                  "eval's cache), one exact Index"},
        "ray": {
            "command": f"edgembed embed {data_dir / 'corpus.jsonl'} --ray -o OUT/ --id-field "
                       "_id --text-field title --text-field text; edgembed shards OUT/ --out "
                       f"SHARDS/ --rows-per-shard {per_shard}",
            "cluster_cpus": args.cpus, "run": run.to_json(), "shards": len(shards),
            "ndcg@10": ray_ndcg, "rows_in_corpus_order": same_order,
            "max_abs_vector_difference": float(np.abs(ray_docs - single_docs).max())
            if same_order else None,
            "identical_top10": float(np.mean([[h.id for h in a] == [h.id for h in b]
                                              for a, b in zip(single_hits, ray_hits,
                                                              strict=True)])),
            "bytes_per_passage_parquet": _parquet_bytes(out),
            "bytes_per_passage_shard": _shard_bytes(shards[0]),
        },
        "ndcg@10_equal": single_ndcg == ray_ndcg,
    }


if __name__ == "__main__":
    main()
