"""`edgembed bench`: this model against the installed peers (`edgembed.bench`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_bench(args: argparse.Namespace) -> int:
    from edgembed.bench import harness, report

    settings = harness.Settings(model=args.model, source=args.source, data=args.data,
                                quick=args.quick, threads=args.threads, reps=args.reps,
                                out=args.out, cache=args.cache)
    result = harness.run(settings)
    print(report.text_table(report.ENCODER_HEADER, report.encoder_rows(result)))
    print(f"wrote {Path(args.out) / 'bench.json'} and bench.md", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    bench = commands.add_parser("bench", help="measure this model against the installed peers "
                                "(sentence-transformers, fastembed, plain onnxruntime)")
    bench.add_argument("--model", help="model package (default: bundled)")
    bench.add_argument("--source", metavar="DIR", help="the model's sentence-transformers "
                       "folder: enables the torch peer and the fp32 / int8 variants")
    bench.add_argument("--data", metavar="BEIR_DIR", help="SciFact (BEIR layout): long "
                       "documents, queries and nDCG@10")
    bench.add_argument("--quick", action="store_true", help="tiny inputs, a smoke test")
    bench.add_argument("--threads", type=int, default=2, help="threads per system (default 2)")
    bench.add_argument("--reps", type=int, help="rounds (default 5; --quick 1)")
    bench.add_argument("--out", default="edgembed-bench", metavar="DIR",
                       help="bench.json, bench.md and plots go here (default edgembed-bench)")
    bench.add_argument("--cache", metavar="DIR", help="exported variants and SciFact "
                       "embeddings (default ~/.cache/edgembed/bench)")
    bench.set_defaults(func=cmd_bench)
