"""`edgembed embed --ray`, `edgembed shards` and `edgembed export-index`: corpora beyond one
laptop (the `ray` and `lancedb` extras, imported only when these run)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import EdgembedError


def add_ray_options(embed: argparse.ArgumentParser) -> None:
    """The options `edgembed embed` takes with --ray."""
    group = embed.add_argument_group("bulk embedding on Ray (--ray; needs the ray extra)")
    group.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                       help="embed INPUT (.jsonl, .parquet, .txt/.md or a folder) on a Ray "
                       "cluster into Parquet files in -o OUT/; ADDRESS: the cluster's (default: "
                       "RAY_ADDRESS or a new local cluster)")
    group.add_argument("--actors", type=int, help="actors (default: cluster CPUs / "
                       "--cpus-per-actor)")
    group.add_argument("--cpus-per-actor", type=int, default=1, metavar="N",
                       help="CPUs Ray reserves per actor = its onnxruntime threads (default 1)")
    group.add_argument("--columns", default="float32,int8,ubinary",
                       help="vector columns to write (default float32,int8,ubinary)")
    group.add_argument("--id-field", default="id", help="id field or column (default id)")
    group.add_argument("--text-field", action="append", metavar="FIELD",
                       help="text field or column; repeat to join several with a space, "
                       "e.g. --text-field title --text-field text (default text)")
    group.add_argument("--max-chars", type=int, default=100_000,
                       help="longer texts are reported and skipped (default 100000)")
    group.add_argument("--no-text", action="store_true", help="do not copy texts into the "
                       "Parquet files")
    group.add_argument("--no-metadata", action="store_true", help="do not keep other fields")
    group.add_argument("--part-mb", type=float, default=2.0,
                       help="input megabytes per part, the unit of work and of resuming "
                       "(default 2)")


def cmd_embed_ray(args: argparse.Namespace) -> int:
    from ..distributed import Fields, embed_to_parquet

    if not args.output:
        raise EdgembedError("--ray writes Parquet files: give the output folder with -o OUT/")
    if args.input == "-":
        if args.ray and Path(args.ray).exists():  # argparse gave INPUT to --ray
            raise EdgembedError(f"--ray took {args.ray} as the cluster address; put INPUT "
                                "first: edgembed embed INPUT --ray [ADDRESS] -o OUT/")
        raise EdgembedError("--ray reads files, not stdin: give INPUT")
    if args.max_chars < 1 or args.part_mb <= 0:
        raise EdgembedError("--max-chars and --part-mb must be positive")
    fields = Fields(id_field=args.id_field, text_fields=tuple(args.text_field or ["text"]),
                    max_chars=args.max_chars, metadata=not args.no_metadata)
    report = embed_to_parquet(
        [args.input], args.output, package=args.model, address=args.ray or None,
        actors=args.actors, cpus_per_actor=args.cpus_per_actor, threads=args.threads,
        batch_size=args.batch_size, columns=[c.strip() for c in args.columns.split(",")],
        fields=fields, keep_text=not args.no_text, part_bytes=int(args.part_mb * (1 << 20)))
    for actor in report.actors:
        print(f"actor {actor.actor}: {actor.threads} thread(s), {actor.parts} parts, "
              f"{actor.rows} rows, {actor.rows_per_s:.1f} rows/s "
              f"({actor.rows_per_cpu_s:.1f} rows per CPU-second)", file=sys.stderr)
    done_before = f" ({report.parts_done_before} done before, skipped)" \
        if report.parts_done_before else ""
    print(f"{report.out}: {report.parts} parts{done_before}, {report.rows} rows, "
          f"{report.bad_rows} bad rows skipped"
          + (" (see part-*.bad.jsonl)" if report.bad_rows else "")
          + f"; {report.seconds:.1f} s, {report.rows_per_s:.1f} rows/s; "
          f"{report.cpus_per_actor} CPU(s) and thread(s) per actor", file=sys.stderr)
    return 0


def cmd_shards(args: argparse.Namespace) -> int:
    from ..encoder import Encoder
    from ..index.shards import build_shards, has_texts

    encoder = Encoder.load(args.model, threads=args.threads) if args.model else None
    shards = build_shards(args.source, args.out, encoder=encoder,
                          rows_per_shard=args.rows_per_shard, mode=args.mode)
    print(f"{args.out}: {len(shards)} shard(s); search them with: edgembed search QUERY "
          f"--index {args.out}", file=sys.stderr)
    if not has_texts(args.out):
        print("edgembed: note: the Parquet files have no text column (embed --no-text), so "
              "the shards have no keyword search: they search with --mode dense only",
              file=sys.stderr)
    return 0


def cmd_export_index(args: argparse.Namespace) -> int:
    from ..index.lance import export_index

    result = export_index(args.source, args.to, overwrite=args.overwrite,
                          ivf_partitions=args.ivf_partitions)
    print(json.dumps(result) if args.json else
          f"{result['rows']} rows into table {result['table']!r} of {result['database']} in "
          f"{result['seconds']:.1f} s; search it with: edgembed search QUERY --index {args.to}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    shards = commands.add_parser("shards", help="build index shards from the Parquet files "
                                 "of `edgembed embed --ray` (needs the ray extra)")
    shards.add_argument("source", metavar="PARQUET_DIR")
    shards.add_argument("--out", required=True, metavar="DIR", help="new folder for the shards")
    shards.add_argument("--rows-per-shard", type=int, default=1_000_000, metavar="N")
    shards.add_argument("--mode", choices=("exact", "hnsw"), default="exact")
    shards.add_argument("--model", help="model package (default: the one the files name)")
    shards.add_argument("--threads", type=int)
    shards.set_defaults(func=cmd_shards)

    export = commands.add_parser("export-index", help="load an index, shards or Parquet files "
                                 "into a vector database (LanceDB; needs the lancedb extra)")
    export.add_argument("source", metavar="SOURCE", help="index folder, sharded index folder "
                        "or Parquet folder of `edgembed embed --ray`")
    export.add_argument("--to", required=True, metavar="URI",
                        help="lancedb:PATH[?table=NAME] (default table: passages)")
    export.add_argument("--overwrite", action="store_true", help="replace an existing table")
    export.add_argument("--ivf-partitions", type=int, metavar="N",
                        help="also build an IVF_FLAT Hamming index with N partitions "
                        "(default: none, LanceDB scans all codes)")
    export.add_argument("--json", action="store_true")
    export.set_defaults(func=cmd_export_index)
