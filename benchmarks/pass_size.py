"""How many padded tokens a forward pass should hold: `edgembed bench`'s worker, run on
the package under test and its fp32 graph with `edgembed.encoder.PASS_TOKENS_PER_THREAD`
set to each value, in fresh processes taking turns, with the same method as the bench.
Speed and peak memory move in opposite directions as passes grow; this is the table the
constant was chosen from.

    python -m edgembed.bench.pass_size --data ../shared/data/scifact --reps 5 \
        --out benchmarks/results/pass_tokens.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from . import harness

SIZES = (64, 128, 256, 512)
GRAPHS = ("default", "fp32")
FIELDS = ("short_per_s", "long_per_s", "latency_p50_ms", "rss_after_load_mb", "peak_rss_mb",
          "alone_vs_batch")


def run(settings: harness.Settings, sizes: tuple[int, ...] = SIZES) -> dict:
    started, start_load = time.time(), harness.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-pass-size-"))
    planned, skipped = harness.plan(settings, workdir)
    chosen = [replace(system, name=f"{system.graph} {size}",
                      extra={**system.extra, "pass_tokens_per_thread": size})
              for system in planned if system.kind == "edgembed" and system.graph in GRAPHS
              for size in sizes]
    texts = harness.workload(settings)
    encoders = harness.measure_encoders(chosen, texts, settings, workdir, skipped)
    rows = {}
    for name, row in encoders.items():
        graph, size = name.rsplit(" ", 1)
        rows[name] = {"graph": graph, "pass_tokens_per_thread": int(size),
                      **{key: row[key] for key in FIELDS if key in row},
                      "short_per_s_per_round": [r["short_per_s"] for r in row["per_round"]]}
        fp32 = encoders.get(f"fp32 {size}")
        if fp32 is not None:  # within each round, as the bench takes its ratios
            rows[name]["short_speed_vs_fp32_same_size"] = harness.median(
                [a["short_per_s"] / b["short_per_s"]
                 for a, b in zip(row["per_round"], fp32["per_round"], strict=False)])
    return {
        **harness.study_record("pass_size", started, start_load, settings, texts),
        "encoders": rows,
        "skipped": skipped,
    }


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected positive whole numbers separated by commas, e.g. 64,128, got {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a BEIR folder for the long documents and queries")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", type=_sizes, default=SIZES,
                        help="padded tokens per thread per pass, comma-separated")
    parser.add_argument("--cache", help="exported variants (default ~/.cache/edgembed/bench)")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    settings = harness.Settings(data=args.data, threads=args.threads, reps=args.reps,
                                cache=args.cache, only=("edgembed",))
    result = run(settings, args.sizes)
    harness.write_study(result, args.out)
    for name, row in result["encoders"].items():
        print(f"{name:<14} {row['short_per_s']:8.1f} sent/s  {row.get('long_per_s', 0):6.1f} "
              f"docs/s  p50 {row['latency_p50_ms']:5.2f} ms  peak RSS {row['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
