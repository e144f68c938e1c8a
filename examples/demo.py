"""`make demo`: embed the sample documents with the bundled model and rank their
paragraphs against a few queries, fully offline."""

from __future__ import annotations

import sys
from pathlib import Path

from edgembed import Encoder

SAMPLES = Path(__file__).resolve().parent.parent / "models" / "samples"
QUERIES = sys.argv[1:] or [
    "how do I keep my bread starter alive",
    "my wifi keeps dropping",
    "what to do right after burning your hand",
]


def paragraphs() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SAMPLES.rglob("*")):
        if path.suffix in {".txt", ".md"} and path.name != "README.md":
            for block in path.read_text(encoding="utf-8").split("\n\n"):
                if len(block.split()) >= 8:
                    found.append((str(path.relative_to(SAMPLES)), " ".join(block.split())))
    return found


def main() -> None:
    encoder = Encoder.load()
    passages = paragraphs()
    documents = encoder.encode([text for _, text in passages], kind="document")
    queries = encoder.encode(QUERIES, kind="query")
    print(f"{len(passages)} passages from {SAMPLES}, model {encoder.manifest['name']}")
    for query, vector in zip(QUERIES, queries, strict=True):
        scores = documents @ vector
        print(f"\n> {query}")
        for rank, index in enumerate(scores.argsort()[::-1][:3], start=1):
            name, text = passages[index]
            print(f"  {rank}. {scores[index]:.3f}  {name}: {text[:90]}…")


if __name__ == "__main__":
    main()
