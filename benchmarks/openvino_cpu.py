"""onnxruntime against OpenVINO on this CPU: `edgembed bench`'s encoder rows for the
edgembed systems only (the package under test, fp32, int8-dynamic and int8-static on
onnxruntime; the package under test, fp32 and int8-static on OpenVINO's CPU device), with
the same workers and method, without the peers, the profile and the search benchmark.

    python -m edgembed.bench.openvino_cpu --reps 5 --out benchmarks/results/openvino_cpu.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from . import harness, systems

FIELDS = ("kind", "graph", "rounds", "short_per_s", "latency_p50_ms", "latency_p95_ms",
          "cold_start_s", "cold_start_empty_cache_s", "cold_start_warm_cache_s",
          "rss_first_vector_mb", "peak_rss_mb", "cosine_to_reference", "alone_vs_batch")


def run(settings: harness.Settings) -> dict:
    started, start_load = time.time(), harness.load_average()
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-openvino-"))
    chosen, skipped = harness.plan(settings, workdir)
    texts = harness.workload(settings)
    encoders = harness.measure_encoders(chosen, texts, settings, workdir, skipped)
    reference = next((name for name, row in encoders.items() if row["graph"] == "fp32"), None)
    harness.add_ratios(encoders, reference)
    harness.add_agreement(encoders, reference)
    rows = {}
    for name, row in encoders.items():
        rows[name] = {key: row[key] for key in (*FIELDS, "short_ratio_vs_reference")
                      if key in row}
        rows[name]["short_per_s_per_round"] = [r["short_per_s"] for r in row["per_round"]]
    kinds = {row["kind"] for row in encoders.values()}
    record = harness.study_record("openvino_cpu", started, start_load, settings, texts)
    record["settings"]["reference"] = reference
    return {
        **record,
        "encoders": rows,
        "dependencies_mb": {kind: round(systems.dependency_bytes(
            systems.DISTRIBUTIONS[kind])["bytes"] / 1e6, 1) for kind in sorted(kinds)},
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--cache", help="exported variants (default ~/.cache/edgembed/bench)")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    args = parser.parse_args(argv)
    settings = harness.Settings(threads=args.threads, reps=args.reps, cache=args.cache,
                                only=("edgembed", "edgembed-openvino"))
    result = run(settings)
    harness.write_study(result, args.out)
    for name, row in result["encoders"].items():
        print(f"{name:<34} {row['short_per_s']:8.1f} sent/s  p50 {row['latency_p50_ms']:6.2f} ms"
              f"  cold {row['cold_start_s']:.2f} s  peak RSS {row['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
