"""LlamaIndex `BaseEmbedding` backed by an edgembed package
(`pip install 'edgembed[llamaindex]'`).

    from llama_index.core import Settings
    from edgembed.integrations.llamaindex import EdgembedEmbedding
    Settings.embed_model = EdgembedEmbedding()  # the bundled all-MiniLM-L6-v2, offline

Queries get the package's query prefix (`kind="query"`), texts its document prefix.
LlamaIndex hands texts over in groups of `embed_batch_size`; the encoder then sorts each
group by length and runs it in batches of `batch_size`, so a group spanning several
batches pads less. The async methods run the encoder in a worker thread (it is
thread-safe and onnxruntime releases the GIL)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..encoder import Encoder
from . import require
from .embedder import Embedder

_WHAT = "edgembed.integrations.llamaindex"
_li_embeddings = require("llama_index.core.base.embeddings.base", "llamaindex", _WHAT)
_li_bridge = require("llama_index.core.bridge.pydantic", "llamaindex", _WHAT)

# texts LlamaIndex passes per call: several encoder batches, so length sorting pays
EMBED_BATCH_SIZE = 256


class EdgembedEmbedding(_li_embeddings.BaseEmbedding):
    """Embeddings from an edgembed model package: `package` is its directory (None: the
    bundled default), or pass a loaded `encoder` to share it. `precision` other than
    "float32" returns the codes as numbers. `encode_kwargs` are passed to `Encoder.encode`
    for texts and queries (e.g. `{"dims": 128}`); `query_encode_kwargs` add to or override
    them for queries."""

    batch_size: int = _li_bridge.Field(default=32, description="texts per ONNX batch")
    precision: str = _li_bridge.Field(default="float32", description="output precision")
    _embedder: Embedder = _li_bridge.PrivateAttr()

    def __init__(self, package: str | Path | None = None, *, encoder: Encoder | None = None,
                 threads: int | None = None, batch_size: int = 32,
                 precision: str = "float32", embed_batch_size: int = EMBED_BATCH_SIZE,
                 encode_kwargs: Mapping[str, Any] | None = None,
                 query_encode_kwargs: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        embedder = Embedder.build(package, encoder, threads, batch_size, precision,
                                  encode_kwargs, query_encode_kwargs)
        kwargs.setdefault("model_name", embedder.encoder.manifest.name)
        super().__init__(batch_size=batch_size, precision=precision,
                         embed_batch_size=embed_batch_size, **kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "EdgembedEmbedding"

    @property
    def encoder(self) -> Encoder:
        return self._embedder.encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.query(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.documents([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.documents(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)
