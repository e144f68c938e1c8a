"""What every framework adapter does with the encoder: documents and queries to vectors, with
the options checked once, when the adapter is made. No framework is imported here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import Encoder, check_texts
from ..errors import EdgembedError

# set by the adapter itself, never through encode_kwargs
RESERVED = ("texts", "kind", "batch_size", "precision")


@dataclass(frozen=True)
class Embedder:
    """An encoder and the keywords its `encode` gets for documents and for queries."""

    encoder: Encoder
    batch_size: int = 32
    precision: str = "float32"
    document_options: Mapping[str, Any] = field(default_factory=dict)
    query_options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, package: str | Path | None = None, encoder: Encoder | None = None,
              threads: int | None = None, batch_size: int = 32, precision: str = "float32",
              encode_kwargs: Mapping[str, Any] | None = None,
              query_encode_kwargs: Mapping[str, Any] | None = None) -> Embedder:
        """Load the package (or share a loaded `encoder`) and check every option now, so a
        typo fails when the adapter is made, not at the first document.

        `encode_kwargs` go to `Encoder.encode` for documents and queries alike (`dims=128`
        must apply to both, or the vectors would not compare); `query_encode_kwargs` add to
        or override them for queries."""
        if encoder is not None and (package is not None or threads is not None):
            raise EdgembedError("pass either encoder= or package=/threads=, not both")
        document = dict(encode_kwargs or {})
        query = {**document, **(query_encode_kwargs or {})}
        for name in RESERVED:
            if name in query:
                raise EdgembedError(f"{name!r} cannot be an encode keyword here: the adapter "
                                    "sets it (batch_size= and precision= are its own "
                                    "arguments)")
        if encoder is None:
            encoder = Encoder.load(package, threads=threads)
        embedder = cls(encoder, batch_size, precision, document, query)
        for kind in ("document", "query"):  # checks every argument, encodes nothing
            embedder.encode([], kind)
        return embedder

    def encode(self, texts: Any, kind: str) -> np.ndarray:
        """Rows for a list of texts (the encoder's input contract: a non-str item is a
        TypeError naming its position)."""
        options = self.query_options if kind == "query" else self.document_options
        if "prompt" not in options and "prompt_name" not in options:
            options = {**options, "kind": kind}  # a prompt in the options replaces the kind's
        return self.encoder.encode(check_texts(texts), batch_size=self.batch_size,
                                   precision=self.precision, **options)

    def documents(self, texts: Any) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of str, got one str; embed it as a query "
                            "or pass [text]")
        return self.encode(texts, "document").tolist()

    def query(self, text: Any) -> list[float]:
        return self.encode([check_text(text)], "query")[0].tolist()


def check_text(text: Any) -> str:
    """One text, as the encoder's contract has it (a str subclass comes out as a str)."""
    if not isinstance(text, str):
        raise TypeError(f"text is {type(text).__name__}, expected str")
    return check_texts([text])[0]
