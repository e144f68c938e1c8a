"""Optional extras, imported only when a feature needs them: a missing one is one clear
error naming the `pip install` that brings it, never an ImportError from deep inside."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import EdgembedError

# what each extra is for, quoted in the error
PURPOSE = {"ray": "bulk embedding on Ray and Parquet files",
           "lancedb": "export to LanceDB",
           "openvino": "the OpenVINO backend (backend='openvino')"}


class MissingExtraError(EdgembedError):
    """An optional dependency of the feature asked for is not installed."""


def require(module: str, extra: str) -> ModuleType:
    """`importlib.import_module(module)`, or MissingExtraError naming `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = exc.name or module
        raise MissingExtraError(
            f"{PURPOSE.get(extra, extra)} needs the {extra} extra ({missing} is not "
            f"installed): pip install 'edgembed[{extra}]'") from None
