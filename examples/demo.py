"""The Python side of `make demo`: index the sample documents with the Index API and search
them, fully offline. Usage: python examples/demo.py [QUERY ...]"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from edgembed import Encoder, Index
from edgembed.ingest import index_paths

SAMPLES = Path(__file__).resolve().parent.parent / "models" / "samples"
QUERIES = sys.argv[1:] or [
    "how do I keep my bread starter alive",
    "my wifi keeps dropping",
    "what to do right after burning your hand",
]


def main() -> None:
    encoder = Encoder.load()
    with tempfile.TemporaryDirectory() as folder:
        index = Index.create(Path(folder) / "index", encoder)
        report = index_paths(index, [SAMPLES])  # passages that fit the model, then save()
        print(f"{report.passages_added} passages from {SAMPLES}, model {encoder.manifest['name']}")
        for query, hits in zip(QUERIES, index.search(QUERIES, k=3), strict=True):
            print(f"\n> {query}")
            for rank, hit in enumerate(hits, start=1):
                name = Path(hit.metadata["file"]).relative_to(SAMPLES)
                print(f"  {rank}. {hit.score:.3f}  {name}: {' '.join(hit.text.split())[:90]}…")
        index.close()


if __name__ == "__main__":
    main()
