"""Adapters that make edgembed a first-class citizen of other frameworks. Each module is
imported only when asked for, needs its framework (one extra each) and says which extra
to install when it is missing:

* `edgembed.integrations.langchain`: `EdgembedEmbeddings`, LangChain's `Embeddings`
  (`pip install 'edgembed[langchain]'`);
* `edgembed.integrations.langchain_store`: `EdgembedVectorStore`, a LangChain `VectorStore`
  kept in an edgembed `Index` (same extra);
* `edgembed.integrations.llamaindex`: `EdgembedEmbedding`, LlamaIndex's `BaseEmbedding`
  (`pip install 'edgembed[llamaindex]'`);
* `edgembed.integrations.mteb`: `EdgembedMTEBModel`, an MTEB encoder
  (`pip install 'edgembed[mteb]'`).

Nothing here is imported by `import edgembed`."""

from __future__ import annotations

import importlib
from types import ModuleType


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import a framework module, or fail with one line naming the extra that brings it.
    The ImportError keeps the missing module's name, so callers can tell it apart from a
    broken import of ours."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise ImportError(f"{what} needs {missing}, which is not installed: "
                          f"pip install 'edgembed[{extra}]'", name=missing) from None
