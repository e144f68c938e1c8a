"""A real sentence-transformers model exported by default (`auto`: per-token int8) and as
fp32, then measured side by side in one run: each package's quality card (cosine to
torch), export time, size, short-sentence throughput against sentence-transformers and
single-text latency.

    python model_variants/real_model.py /path/to/all-mpnet-base-v2 \
        --name sentence-transformers/all-mpnet-base-v2 \
        --out benchmarks/results/real_all_mpnet_base_v2.json

Each export is `edgembed export SRC -o OUT --source-name NAME` (with `--quantize none`
for fp32): the same options, through the Python API. Throughput: the 200 built-in
validation sentences, batch 32, 2 threads for every system, the systems taking turns in
every round, median over rounds (ratios taken per round). Latency: each validation
sentence encoded alone, the packages alternating text by text; p50 and p95.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgembed import Encoder
from edgembed.bench.machine import machine_info
from edgembed.export import ExportOptions, export_model
from edgembed.export.source import read_source
from edgembed.export.texts import builtin_texts
from edgembed.export.validate import cosine_agreement, throughput

THREADS = 2


def latencies(encoders: dict[str, Encoder], texts: list[str]) -> dict[str, dict[str, float]]:
    """Milliseconds per single-text encode, the encoders alternating text by text."""
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for encoder in encoders.values():
        encoder.encode(texts[:8])  # warm-up
    for text in texts:
        for name, encoder in encoders.items():
            start = time.perf_counter()
            encoder.encode(text)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"p50_ms": round(float(np.percentile(v, 50)), 2),
                   "p95_ms": round(float(np.percentile(v, 95)), 2)} for name, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the model's sentence-transformers folder")
    parser.add_argument("--name", required=True, help="the model's id, for the manifest")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", help="where the packages go (default: a temporary folder)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(THREADS)
    source = read_source(args.source)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="edgembed-real-"))
    packages, exports = {"default (auto)": workdir / "auto", "fp32": workdir / "fp32"}, {}
    for (name, path), method in zip(packages.items(), ("auto", "none"), strict=True):
        start = time.perf_counter()
        manifest = export_model(args.source, path, ExportOptions(quantize=method,
                                                                 source_name=args.name))
        exports[name] = {"seconds": round(time.perf_counter() - start, 1),
                         "quality": manifest.quality,
                         "quantization": {key: value for key, value in
                                          manifest.quantization.items() if key != "auto"}}
        print(name, json.dumps(exports[name], default=dict)[:400], flush=True)

    encoders = {name: Encoder.load(path, threads=THREADS) for name, path in packages.items()}
    texts = builtin_texts("validation")
    model = SentenceTransformer(args.source, device="cpu", local_files_only=True)
    model.max_seq_length = source.max_seq_length
    systems = {"sentence-transformers fp32": lambda t: model.encode(t, batch_size=32)}
    systems.update({name: (lambda t, e=encoder: e.encode(t, batch_size=32))
                    for name, encoder in encoders.items()})
    rounds = throughput(systems, texts, args.rounds)
    speed = {name: {"sentences_per_s": round(float(np.median(values)), 1),
                    "rounds": [round(float(v), 1) for v in values]}
             for name, values in rounds.items()}
    latency = latencies(encoders, texts)
    variants = {}
    for name, encoder in encoders.items():
        variants[name] = {
            "model_mb": round(encoder.manifest.files["model.onnx"].bytes / 1e6, 1),
            "export": exports[name],
            **speed[name],
            "vs_fp32": round(float(np.median(rounds[name] / rounds["fp32"])), 2),
            "vs_sentence_transformers": round(float(np.median(
                rounds[name] / rounds["sentence-transformers fp32"])), 2),
            **latency[name],
            "alone_vs_batch": cosine_agreement(
                encoder.encode(texts, batch_size=32),
                np.concatenate([encoder.encode([text]) for text in texts])),
        }
        print(name, json.dumps(variants[name], default=dict)[:400], flush=True)
    result = {
        "command": " ".join(["python", os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "model": args.name,
        "weights_file": source.weights_file,
        "weights_sha256": source.weights_sha256,
        "model_type": source.model_type,
        "max_seq_length": source.max_seq_length,
        "machine": machine_info(),
        "load_average_at_end": list(os.getloadavg()),
        "threads": THREADS,
        "throughput_texts": "built-in validation set, 200 sentences, batch 32",
        "latency_texts": "the same 200 sentences, one per call",
        "sentence_transformers": speed["sentence-transformers fp32"],
        "variants": variants,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=dict) + "\n",
                              encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
