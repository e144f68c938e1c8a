"""The systems `edgembed bench` compares, whether each can run here, and what each costs on
disk: its model files and the installed size of its Python dependencies.

Nothing here imports a peer: availability is decided from import specs and distribution
metadata, so the slim install can plan a run and skip what is missing with a message."""

from __future__ import annotations

import importlib.metadata as metadata
import re
from dataclasses import asdict, dataclass, field
from importlib.util import find_spec
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

KINDS = ("edgembed", "edgembed-openvino", "sentence-transformers", "fastembed", "onnxruntime")
# what a kind needs importable in its worker, and the distribution whose closure it installs
NEEDS = {"edgembed": ("onnxruntime", "tokenizers"),
         "edgembed-openvino": ("openvino", "tokenizers"),
         "sentence-transformers": ("torch", "sentence_transformers"),
         "fastembed": ("fastembed",),
         "onnxruntime": ("onnxruntime", "tokenizers")}
DISTRIBUTIONS = {"edgembed": ("edgembed",), "edgembed-openvino": ("edgembed", "openvino"),
                 "sentence-transformers": ("sentence-transformers",),
                 "fastembed": ("fastembed",), "onnxruntime": ("onnxruntime", "tokenizers")}


@dataclass
class System:
    """One measured configuration: a runtime (`kind`) and the model files it runs."""

    name: str
    kind: str
    path: str  # package directory, or the sentence-transformers folder
    max_seq_length: int
    graph: str  # the model graph it runs, e.g. "default" or "fp32": same graph, same vectors
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)


def importable(name: str) -> bool:
    """Whether a top-level module can be found, without importing it."""
    try:
        return find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(kind: str) -> list[str]:
    """Modules a kind needs that cannot be imported here."""
    return [name for name in NEEDS[kind] if not importable(name)]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution_bytes(dist: metadata.Distribution) -> int:
    if _canonical(dist.metadata["Name"]) == "edgembed":
        # an editable install records no files; count the slim runtime's own modules
        import edgembed

        return sum(p.stat().st_size for p in Path(edgembed.__file__).parent.glob("*.py"))
    total = 0
    for entry in dist.files or ():
        located = Path(str(entry.locate()))
        if located.is_file():
            total += located.stat().st_size
    return total


def dependency_bytes(roots: tuple[str, ...]) -> dict:
    """Installed size of distributions and everything they require (extras excluded), from
    the file lists in their metadata. Shared dependencies count for every system."""
    environment = default_environment()
    seen: dict[str, int] = {}
    missing: list[str] = []
    stack = list(roots)
    while stack:
        name = _canonical(stack.pop())
        if name in seen or name in missing:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        seen[name] = _distribution_bytes(dist)
        for text in dist.requires or ():
            try:
                requirement = Requirement(text)
            except InvalidRequirement:
                continue
            if requirement.marker and not requirement.marker.evaluate({**environment,
                                                                       "extra": ""}):
                continue
            stack.append(requirement.name)
    largest = sorted(seen.items(), key=lambda item: -item[1])[:5]
    return {"bytes": sum(seen.values()), "distributions": len(seen),
            "largest": {name: size for name, size in largest}, "not_installed": missing}
