"""A LangChain `VectorStore` kept in an edgembed `Index` (`pip install 'edgembed[langchain]'`):
binary codes, int8 rescoring and SQLite documents in one local directory, no database
server.

    from edgembed.integrations.langchain_store import EdgembedVectorStore
    store = EdgembedVectorStore.create("notes-index")      # or .open("notes-index")
    store.add_texts(["..."], metadatas=[{"topic": "baking"}])
    store.similarity_search_with_score("...", k=4, filter={"topic": "baking"})

The index embeds with its own model package (documents with its document prefix, queries
with its query prefix). Scores are the index's cosine estimates. Adding a text under an id
that exists replaces it. With `autosave=True` (default) every `add_texts` and `delete` is
saved before it returns, crash-safe as `Index.save` is; for bulk loading pass
`autosave=False` and call `save()` at the end. Keywords a search does not know (`rescore`,
`exact`) go to `Index.search`. Filters (`edgembed.integrations.filters`, or a function of
a `Document`) apply to the ranked results: the search asks for more results until `k`
pass the filter or the index has no more."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import check_texts
from ..errors import EdgembedError
from ..index import Hit, Index
from . import require
from .filters import check_filter, matches
from .langchain import EdgembedEmbeddings

_WHAT = "edgembed.integrations.langchain_store"
_lc_documents = require("langchain_core.documents", "langchain", _WHAT)
_lc_vectorstores = require("langchain_core.vectorstores", "langchain", _WHAT)
Document = _lc_documents.Document

# a filtered search first asks the index for this many times k results, then 4× more
# each round until k pass or every document was ranked
FILTER_OVERFETCH = 4

Filter = Mapping[str, Any] | Callable[[Any], bool] | None


class EdgembedVectorStore(_lc_vectorstores.VectorStore):
    """Documents in an edgembed `Index`; build one with `create`, `open` or `from_texts`."""

    def __init__(self, index: Index, embedding: EdgembedEmbeddings | None = None, *,
                 autosave: bool = True) -> None:
        if embedding is None:
            embedding = EdgembedEmbeddings(encoder=index.encoder)
        elif not isinstance(embedding, EdgembedEmbeddings):
            raise EdgembedError(f"{type(embedding).__name__} cannot fill an edgembed index: "
                                "it stores the codes of its own model; pass "
                                "EdgembedEmbeddings (or nothing)")
        options = embedding.embedder
        if options.precision != "float32" or options.document_options or options.query_options:
            raise EdgembedError("the store's embeddings must encode as its index does: "
                                "precision='float32' and no encode_kwargs (the index keeps "
                                "int8 and binary codes itself)")
        if embedding.encoder.package.package_id != index.encoder.package.package_id:
            raise EdgembedError(f"the embeddings use model {embedding.encoder.path}, the index "
                                f"{index.encoder.path}; they must be the same package")
        self.index = index
        self.autosave = autosave
        self._embedding = embedding
        self._writing = threading.Lock()  # an upsert is remove + add + save, as one step

    @classmethod
    def create(cls, path: str | Path, embedding: EdgembedEmbeddings | None = None, *,
               mode: str = "exact", autosave: bool = True) -> EdgembedVectorStore:
        """A new, empty store in directory `path` (see `Index.create`)."""
        encoder = embedding.encoder if isinstance(embedding, EdgembedEmbeddings) else None
        return cls(Index.create(path, encoder, mode=mode), embedding, autosave=autosave)

    @classmethod
    def open(cls, path: str | Path, embedding: EdgembedEmbeddings | None = None, *,
             view: bool = False, autosave: bool = True) -> EdgembedVectorStore:
        """A saved store; `view=True` opens it read-only (see `Index.open`)."""
        encoder = embedding.encoder if isinstance(embedding, EdgembedEmbeddings) else None
        return cls(Index.open(path, encoder, view=view), embedding, autosave=autosave)

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Any,
                   metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                   path: str | Path | None = None, **kwargs: Any) -> EdgembedVectorStore:
        """`create(path, embedding, **kwargs)` and `add_texts`; `path` is required."""
        if path is None:
            raise EdgembedError("EdgembedVectorStore.from_texts needs path=: the directory "
                                "the index is kept in")
        store = cls.create(path, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @property
    def embeddings(self) -> EdgembedEmbeddings:
        return self._embedding

    # ------------------------------------------------------------ writing

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *,
                  ids: list[str | None] | None = None, **kwargs: Any) -> list[str]:
        """Embed and store texts; returns their ids (new UUIDs where none is given). An id
        already stored is replaced."""
        if kwargs:
            raise TypeError(f"add_texts() got unexpected keyword arguments {sorted(kwargs)}")
        texts = check_texts(texts)
        ids = [None] * len(texts) if ids is None else list(ids)
        if len(ids) != len(texts):
            raise EdgembedError(f"{len(ids)} ids for {len(texts)} texts")
        ids = [str(uuid.uuid4()) if doc_id is None else doc_id for doc_id in ids]
        if not texts:
            return []
        metadata = None if metadatas is None else [dict(m or {}) for m in metadatas]
        with self._writing:
            self.index.begin_write()
            try:
                self.index.remove(ids)
                self.index.add(texts, ids=ids, metadata=metadata,
                               batch_size=self._embedding.embedder.batch_size)
            except BaseException:
                self._discard_unsaved()
                raise
            self._autosave()
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Remove documents by id; unknown ids are ignored."""
        if kwargs:
            raise TypeError(f"delete() got unexpected keyword arguments {sorted(kwargs)}")
        if ids is None:
            raise EdgembedError("pass the ids to delete; to drop every document, remove the "
                                "index directory")
        with self._writing:
            self.index.remove(list(ids))
            self._autosave()
        return True

    def _autosave(self) -> None:
        if self.autosave:
            self.index.save()

    def _discard_unsaved(self) -> None:
        """A failed add leaves the index as saved (with autosave), not half-replaced."""
        if self.autosave:
            path, encoder = self.index.path, self.index.encoder
            self.index.close()  # drops the unsaved changes
            self.index = Index.open(path, encoder)

    def save(self) -> None:
        self.index.save()

    def close(self) -> None:
        """Close the index (unsaved changes are dropped: see `autosave`)."""
        self.index.close()

    def __enter__(self) -> EdgembedVectorStore:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not self.index.view:
                self.save()
        finally:
            self.close()

    # ------------------------------------------------------------ reading

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_document(doc_id, text, metadata)
                for doc_id, text, metadata in self.index.get(list(ids))]

    def similarity_search(self, query: str, k: int = 4, filter: Filter = None,
                          **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter,
                                                                    **kwargs)]

    def similarity_search_with_score(self, query: str, k: int = 4, filter: Filter = None,
                                     **kwargs: Any) -> list[tuple[Document, float]]:
        """The `k` best documents that pass `filter`, with the index's cosine estimates."""
        if not isinstance(query, str):
            raise TypeError(f"query is {type(query).__name__}, expected str")
        options = {"mode": "dense", **kwargs}  # cosine scores; mode="hybrid" fuses keywords
        return self._ranked(lambda n: self.index.search(query, n, **options), k, filter)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4,
                                    filter: Filter = None, **kwargs: Any) -> list[Document]:
        """Search with a query vector from this store's `embeddings.embed_query`."""
        query = np.asarray(embedding, dtype=np.float32)[None, :]
        ranked = self._ranked(lambda n: self.index.search_vectors(query, n, **kwargs)[0],
                              k, filter)
        return [doc for doc, _ in ranked]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine, clipped to LangChain's [0, 1] (a negative cosine is unrelated)."""
        return lambda score: min(1.0, max(0.0, score))

    def _ranked(self, search: Callable[[int], list[Hit]], k: int,
                filter: Filter) -> list[tuple[Document, float]]:
        """The first `k` hits that pass `filter`, asking `search` for more while too few
        pass and the index holds more than it returned."""
        if filter is not None and not callable(filter):
            check_filter(filter)
        wanted = k if filter is None else k * FILTER_OVERFETCH
        while True:
            hits = search(max(1, min(wanted, len(self.index))))
            found = [(_document(hit.id, hit.text, hit.metadata), hit.score) for hit in hits]
            if filter is not None:
                found = [(doc, score) for doc, score in found
                         if (filter(doc) if callable(filter) else matches(doc.metadata,
                                                                          filter))]
            if len(found) >= k or len(hits) < wanted or wanted >= len(self.index):
                return found[:k]
            wanted *= FILTER_OVERFETCH


def _document(doc_id: Any, text: str | None, metadata: dict | None) -> Document:
    return Document(page_content=text or "", metadata=metadata or {}, id=str(doc_id))
