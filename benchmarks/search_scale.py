"""Laptop-search scale run: build an `Index` of N synthetic passages (1,000,000 by default),
then measure what a user of that index meets: build time, size on disk, memory, and search
latency of the three modes (query encoding excluded).

    python -m edgembed.bench.search_scale --passages 1000000 --out benchmarks/results/scale_1m.json

Passages are synthetic: words drawn from a Zipf distribution over a made-up vocabulary
(so some words are in most passages and most words in few, as in real text), about 120
words each, the length of a passage `edgembed index` cuts for a 256-token model. Vectors
are random unit vectors: the cascade's cost does not depend on their values (exact mode
scans every code), so latency and memory are those of real vectors of that size; quality
is not measured here (see `edgembed eval`). Queries are 3 to 8 words drawn the same way,
with random vectors. Searching runs in a fresh process that opens the saved index
read-only, as `edgembed search` and `edgembed serve` do, so its memory is what a reader
needs.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VOCABULARY = 50_000
ZIPF = 1.07
WORDS_MEAN, WORDS_SD = 120, 30
BLOCK = 50_000
QUERIES = 300
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["qu", "th", "sh", "ch"]


def vocabulary(size: int, seed: int = 7) -> list[str]:
    """`size` distinct made-up words of 1 to 4 syllables."""
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < size:
        count = int(rng.integers(1, 5))
        words["".join(SYLLABLES[i] for i in rng.integers(0, len(SYLLABLES), count))] = None
    return list(words)


def zipf_words(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    probabilities = 1.0 / np.arange(1, len(words) + 1) ** ZIPF
    picks = rng.choice(len(words), size=count, p=probabilities / probabilities.sum())
    return [words[i] for i in picks]


def passages(rng: np.random.Generator, words: list[str], count: int) -> list[str]:
    lengths = np.clip(rng.normal(WORDS_MEAN, WORDS_SD, count).astype(int), 20, 250)
    flat = zipf_words(rng, words, int(lengths.sum()))
    out, start = [], 0
    for length in lengths:
        out.append(" ".join(flat[start:start + length]) + ".")
        start += length
    return out


def unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((count, dim), dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def rss_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak (since it started: VmHWM, which
    unlike ru_maxrss does not carry the parent's peak into a child), in MB."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"rss_mb": round(found["VmRSS"], 1), "peak_rss_mb": round(found["VmHWM"], 1)}


def load_average() -> list[float]:
    """The machine's 1-, 5- and 15-minute load averages: other work slows every timing."""
    return [round(value, 2) for value in os.getloadavg()]


def build(path: Path, count: int, seed: int) -> dict:
    from edgembed import Encoder, Index

    encoder = Encoder.load()
    rng = np.random.default_rng(seed)
    words = vocabulary(VOCABULARY)
    index = Index.create(path, encoder)
    started = time.perf_counter()
    generating = 0.0
    for start in range(0, count, BLOCK):
        size = min(BLOCK, count - start)
        begun = time.perf_counter()
        texts = passages(rng, words, size)
        vectors = unit_vectors(rng, size, encoder.dim)
        generating += time.perf_counter() - begun
        index.add_vectors(vectors, texts=texts, ids=list(range(start, start + size)))
        print(f"added {start + size:,} passages", file=sys.stderr, flush=True)
    saving = time.perf_counter()
    index.save()
    done = time.perf_counter()
    index.close()
    files = {item.name if item.is_file() else item.name + "/":
             sum(f.stat().st_size for f in ([item] if item.is_file() else item.rglob("*")))
             for item in path.iterdir()}
    return {"passages": count, "seconds": round(done - started - generating, 1),
            "load_average_after": load_average(),
            "save_seconds": round(done - saving, 1),
            "disk_mb": {name: round(size / 1e6, 1) for name, size in sorted(files.items())},
            "disk_total_mb": round(sum(files.values()) / 1e6, 1), **rss_mb()}


def search(path: Path, seed: int) -> dict:
    """In a fresh process: open read-only, time every mode, one query per call."""
    from edgembed import Index

    before = rss_mb()
    load_before = load_average()
    opened = time.perf_counter()
    index = Index.open(path, view=True, verify=False)
    open_seconds = time.perf_counter() - opened
    after_open = rss_mb()
    rng = np.random.default_rng(seed + 1)
    words = vocabulary(VOCABULARY)
    texts = [" ".join(zipf_words(rng, words, int(rng.integers(3, 9)))) for _ in range(QUERIES)]
    vectors = unit_vectors(rng, QUERIES, index.dim)
    modes = {}
    for mode in ("dense", "keyword", "hybrid"):
        for i in range(5):  # warm the page cache and lazy set-up
            index.rank(texts[i:i + 1], k=10, mode=mode, vectors=vectors[i:i + 1])
        times = []
        for i in range(QUERIES):
            start = time.perf_counter()
            index.rank(texts[i:i + 1], k=10, mode=mode, vectors=vectors[i:i + 1])
            times.append((time.perf_counter() - start) * 1e3)
        modes[mode] = {"median_ms": round(float(np.median(times)), 2),
                       "p95_ms": round(float(np.percentile(times, 95)), 2),
                       "max_ms": round(float(np.max(times)), 2), **rss_mb()}
    index.close()
    return {"open_seconds": round(open_seconds, 2), "rss_before_open_mb": before["rss_mb"],
            "after_open": after_open, "modes": modes, "queries": QUERIES,
            "load_average_before": load_before, "load_average_after": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--out", help="write the JSON report here")
    parser.add_argument("--index", help="build the index here (default: a temporary folder, "
                        "deleted afterwards)")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--search-only", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.search_only:  # the child process
        print(json.dumps(search(Path(args.search_only), args.seed)))
        return 0
    from edgembed.bench.machine import machine_info

    command = shlex.join(["python", "-m", "edgembed.bench.search_scale", *(argv or sys.argv[1:])])
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="edgembed-scale-") as tmp:
        path = Path(args.index) if args.index else Path(tmp) / "index"
        built = build(path, args.passages, args.seed)
        child = subprocess.run([sys.executable, "-m", "edgembed.bench.search_scale",
                                "--search-only", str(path), "--seed", str(args.seed)],
                               capture_output=True, text=True, check=True)
        searched = json.loads(child.stdout)
    report = {
        "command": command, "machine": {**machine_info(), "load_average_at_start": load},
        "workload": {"passages": args.passages, "words_per_passage": [WORDS_MEAN, WORDS_SD],
                     "vocabulary": VOCABULARY, "zipf_exponent": ZIPF,
                     "vectors": "random unit vectors, 384 dimensions (the bundled model's)",
                     "index": "exact mode, default keyword tokenizer",
                     "latency": "per query, k=10, one query per call, query encoding "
                                "excluded (vectors given), index opened read-only in a fresh "
                                "process",
                     "load_average": "the machine's 1-, 5- and 15-minute load averages; "
                                     "the machine has 2 cores and was shared"},
        "build": built, "search": searched,
    }
    text = json.dumps(report, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
