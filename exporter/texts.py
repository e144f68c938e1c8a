"""Built-in text sets: calibration (for quantization) and a held-out validation set.

Both are original sentences written for this project, shipped in `exporter/data/`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from edgembed.errors import ExportError

BUILTIN = ("calibration", "validation")


def builtin_texts(name: str) -> list[str]:
    if name not in BUILTIN:
        raise ExportError(f"no built-in text set {name!r}; choose from {', '.join(BUILTIN)}")
    text = (resources.files("edgembed.export") / "data" / f"{name}.txt").read_text("utf-8")
    return [line for line in text.splitlines() if line.strip()]


def read_texts(path: str | Path) -> list[str]:
    """One text per line; blank lines are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"cannot read texts from {path}: {exc}") from None
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise ExportError(f"{path} holds no text lines")
    return texts
