"""`edgembed index`, `edgembed search` and `edgembed eval`: local search over folders of
files, and its quality on BEIR data."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from pathlib import Path

import numpy as np

from ..encoder import Encoder
from ..errors import EdgembedError
from ..index import META_FILE, Hit, Index, IngestReport, index_paths
from ..index.shards import ShardedIndex, is_sharded
from .backend import add_backend_options, index_encoder, load_encoder
from .encode import add_prompt_options


def _open_or_create_index(args: argparse.Namespace, create: bool) -> Index:
    if (Path(args.index) / META_FILE).is_file():
        return Index.open(args.index, encoder=index_encoder(args))
    if not create:
        raise EdgembedError(f"no index at {args.index}; build one with: edgembed index PATH "
                            f"--index {args.index}")
    return Index.create(args.index, load_encoder(args, args.model),
                        mode=args.mode, keyword_tokenizer=args.keyword_tokenizer)


def _summary(name: str, report: IngestReport, passages: int) -> str:
    return (f"{name}: {report.added_files} new, {report.updated_files} changed, "
            f"{report.unchanged_files} unchanged, {report.removed_files} removed, "
            f"{report.skipped_files} skipped files; +{report.passages_added} / "
            f"-{report.passages_removed} passages; {passages} passages in the index")


def cmd_index(args: argparse.Namespace) -> int:
    index = _open_or_create_index(args, create=True)
    if args.watch:
        return _watch(args, index)
    try:
        report = index_paths(index, args.paths)
        passages = len(index)
    finally:
        index.close()
    print(_summary(args.index, report, passages), file=sys.stderr)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _watch(args: argparse.Namespace, index: Index) -> int:
    """Index, then update after every change until Ctrl-C; each update is one saved state."""
    from ..index.watch import watch_paths

    def updated(report: IngestReport) -> None:
        print(_summary(args.index, report, len(index)), file=sys.stderr, flush=True)

    def failed(exc: Exception) -> None:
        message = " ".join(str(exc).split())
        print(f"edgembed: warning: update failed, retried at the next change: {message}",
              file=sys.stderr, flush=True)

    print(f"edgembed: watching {', '.join(args.paths)} (Ctrl-C stops)", file=sys.stderr,
          flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
    try:
        watch_paths(index, args.paths, updated, poll=True if args.poll else None,
                    on_error=failed)
    except KeyboardInterrupt:
        print("edgembed: stopped watching; the index holds the last saved update",
              file=sys.stderr)
    finally:
        index.close()  # drops an update cut short: the last save stands
    return 0


def _display_path(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _search(args: argparse.Namespace, encoder: Encoder | None) -> list[Hit]:
    """Search an index folder, a sharded index folder or a LanceDB table (lancedb:URI).
    Sharded indexes search in every mode, as one index would; they have no file table
    (no --folder, --type) and read queries as plain words. LanceDB tables hold no keyword
    table: they search densely."""
    where = args.index
    if where.startswith("lancedb:"):
        if args.mode not in (None, "dense") or args.keyword_syntax or args.folder or args.type:
            raise EdgembedError(f"{where} is searched by embeddings only (LanceDB tables "
                                "exported by edgembed hold no keyword index): use --mode "
                                "dense, without --keyword-syntax, --folder or --type")
        from ..index.lance import LanceIndex

        table = LanceIndex(where, encoder)
        return table.search_vectors(_query_vector(args, table.encoder, "dense"), k=args.k,
                                    rescore=args.rescore)[0]
    if is_sharded(where):
        if args.keyword_syntax or args.folder or args.type:
            raise EdgembedError(f"{where} is a sharded index: it reads queries as plain words "
                                "and has no file table; search without --keyword-syntax, "
                                "--folder or --type")
        with ShardedIndex.open(where, encoder=encoder) as sharded:
            # shards without texts search densely, unless another mode is asked for
            mode = args.mode or ("hybrid" if sharded.texts else "dense")
            return sharded.search(args.query, k=args.k, mode=mode, rescore=args.rescore,
                                  vectors=_query_vector(args, sharded.encoder, mode))
    index = Index.open(where, encoder=encoder, view=True)
    try:
        mode = args.mode or "hybrid"
        return index.search(args.query, k=args.k, mode=mode, rescore=args.rescore,
                            keyword_syntax=args.keyword_syntax, folder=args.folder,
                            file_types=args.type,
                            vectors=_query_vector(args, index.encoder, mode))
    finally:
        index.close()


def _query_vector(args: argparse.Namespace, encoder: Encoder, mode: str) -> np.ndarray | None:
    """The query's vector (one row): with the model's query prefix, or the prompt the
    command names. None in keyword mode, which embeds nothing."""
    prompted = args.prompt_name is not None or args.prompt is not None
    if mode == "keyword":
        if prompted:
            raise EdgembedError("--mode keyword embeds nothing: --prompt-name and --prompt "
                                "apply to the dense and hybrid modes")
        return None
    return encoder.encode([args.query], kind=None if prompted else "query",
                          prompt_name=args.prompt_name, prompt=args.prompt)


def cmd_search(args: argparse.Namespace) -> int:
    hits = _search(args, index_encoder(args))
    results = []
    for rank, hit in enumerate(hits, start=1):
        meta = hit.metadata or {}
        results.append({"rank": rank, "score": round(hit.score, 4), "id": hit.id,
                        "file": _display_path(meta["file"]) if "file" in meta else None,
                        "passage": meta.get("passage"), "page": meta.get("page"),
                        "text": hit.text, "metadata": meta})
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    if not results:
        print("no results (the index is empty)", file=sys.stderr)
    for row in results:
        snippet = " ".join((row["text"] or "").split())
        snippet = snippet if len(snippet) <= 160 else snippet[:159] + "…"
        where = f"{row['file']} #{row['passage']}" if row["file"] else str(row["id"])
        if row["page"] is not None:
            where += f" (page {row['page']})"
        print(f"{row['rank']:>2}. {row['score']:.3f}  {where}\n    {snippet}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..eval.evaluate import evaluate, format_table

    encoder = load_encoder(args, args.model)
    report = evaluate(args.data, encoder, split=args.split, cache=args.cache,
                      rescore=args.rescore, command=shlex.join(["edgembed", *sys.argv[1:]]))
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        try:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EdgembedError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    print(text if args.json else format_table(report), end="" if args.json else "\n")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    index = commands.add_parser("index", help="index text, Markdown, PDF, HTML, Word, "
                                "OpenDocument, e-mail and code files for search "
                                "(incremental: unchanged files are skipped)")
    index.add_argument("paths", nargs="+", metavar="PATH", help="files or folders")
    index.add_argument("--index", required=True, metavar="DIR", help="index directory")
    index.add_argument("--model", help="model package (default: the index's, or bundled)")
    index.add_argument("--mode", choices=("exact", "hnsw"), default="exact",
                       help="search mode of a new index (default: exact)")
    index.add_argument("--keyword-tokenizer", metavar="NAME",
                       help="keyword search of a new index: english (Porter stemming), "
                       "unicode (any language, no stemming), trigram (substrings), or an "
                       "FTS5 tokenize string (default: english for an English-only model, "
                       "else unicode)")
    index.add_argument("--watch", action="store_true",
                       help="keep running: update the index whenever files change "
                       "(Ctrl-C stops)")
    index.add_argument("--poll", action="store_true",
                       help="with --watch: poll the folders every 2 s instead of using "
                       "file-system events")
    index.add_argument("--threads", type=int)
    add_backend_options(index)
    index.set_defaults(func=cmd_index)

    search = commands.add_parser("search", help="search an index")
    search.add_argument("query")
    search.add_argument("--index", required=True, metavar="DIR",
                        help="index folder, sharded index folder (edgembed shards) or a "
                        "LanceDB table (lancedb:PATH[?table=NAME])")
    search.add_argument("-k", type=int, default=10, help="results (default 10)")
    search.add_argument("--mode", choices=("hybrid", "dense", "keyword"), default=None,
                        help="hybrid (default): embeddings and keywords fused; dense: "
                        "embeddings only; keyword: BM25 only")
    search.add_argument("--keyword-syntax", action="store_true",
                        help="read QUERY as an FTS5 query (\"phrases\", AND, OR, NOT, "
                        "prefix*), not as plain words")
    search.add_argument("--folder", metavar="DIR", help="only files under this folder")
    search.add_argument("--type", action="append", metavar="SUFFIX",
                        help="only files of this type, e.g. pdf (repeatable)")
    search.add_argument("--rescore", type=int, default=4, metavar="M",
                        help="int8-rescore k·M binary candidates; 0: binary only (default 4)")
    search.add_argument("--model", help="model package (default: the index's)")
    add_prompt_options(search, "the query")
    search.add_argument("--threads", type=int)
    add_backend_options(search)
    search.add_argument("--json", action="store_true")
    search.set_defaults(func=cmd_search)

    evaluation = commands.add_parser("eval", help="nDCG@10, recall@100 and latency of every "
                                     "precision on a BEIR dataset")
    evaluation.add_argument("--data", required=True, metavar="BEIR_DIR")
    evaluation.add_argument("--model", help="model package (default: bundled)")
    evaluation.add_argument("--split", default="test")
    evaluation.add_argument("--rescore", type=int, default=4, metavar="M")
    evaluation.add_argument("--cache", metavar="DIR", help="cache embeddings here")
    evaluation.add_argument("--threads", type=int)
    add_backend_options(evaluation)
    evaluation.add_argument("--json", action="store_true", help="print JSON, not a table")
    evaluation.add_argument("--out", metavar="FILE", help="also write the JSON report here")
    evaluation.set_defaults(func=cmd_eval)
