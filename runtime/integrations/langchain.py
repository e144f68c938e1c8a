"""LangChain `Embeddings` backed by an edgembed package (`pip install 'edgembed[langchain]'`).

    from edgembed.integrations.langchain import EdgembedEmbeddings
    embeddings = EdgembedEmbeddings()  # the bundled all-MiniLM-L6-v2, offline

Queries get the package's query prefix (`kind="query"`), documents its document prefix.
The async methods run the encoder in a worker thread: it is thread-safe and onnxruntime
releases the GIL, so concurrent calls (threads or asyncio tasks) encode in parallel and
the event loop never waits on the model."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..encoder import Encoder
from . import require
from .embedder import Embedder

_lc_embeddings = require("langchain_core.embeddings", "langchain",
                         "edgembed.integrations.langchain")
_lc_config = require("langchain_core.runnables.config", "langchain",
                     "edgembed.integrations.langchain")


class EdgembedEmbeddings(_lc_embeddings.Embeddings):
    """Embeddings from an edgembed model package: `package` is its directory (None: the
    bundled default), or pass a loaded `encoder` to share it. `precision` other than
    "float32" returns the codes as numbers (int8 codes, packed sign bytes), as
    sentence-transformers' `encode(precision=...)` would. `encode_kwargs` are passed to
    `Encoder.encode` for documents and queries (e.g. `{"dims": 128}`);
    `query_encode_kwargs` add to or override them for queries."""

    def __init__(self, package: str | Path | None = None, *, encoder: Encoder | None = None,
                 threads: int | None = None, batch_size: int = 32,
                 precision: str = "float32", encode_kwargs: Mapping[str, Any] | None = None,
                 query_encode_kwargs: Mapping[str, Any] | None = None) -> None:
        self.embedder = Embedder.build(package, encoder, threads, batch_size, precision,
                                       encode_kwargs, query_encode_kwargs)

    @property
    def encoder(self) -> Encoder:
        return self.embedder.encoder

    def __repr__(self) -> str:
        return (f"EdgembedEmbeddings(package={str(self.encoder.path)!r}, "
                f"batch_size={self.embedder.batch_size}, "
                f"precision={self.embedder.precision!r})")

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; `[]` for `[]`. A non-str item raises TypeError
        naming its position."""
        return self.embedder.documents(texts)

    def embed_query(self, text: str) -> list[float]:
        """The query's vector, with the package's query prefix."""
        return self.embedder.query(text)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return await _lc_config.run_in_executor(None, self.embed_documents, texts)

    async def aembed_query(self, text: str) -> list[float]:
        return await _lc_config.run_in_executor(None, self.embed_query, text)
