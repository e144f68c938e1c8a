"""Calibrate output quantization: per-dimension statistics of a package's own embeddings.

The statistics are taken from the vectors the edgembed runtime produces with the written
package (not from torch), because those are the vectors users will quantize. They are
stored in the manifest's `calibration` section, which no checksum covers, so calibrating
never touches model.onnx or tokenizer.json."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgembed.encoder import Encoder
from edgembed.errors import ExportError
from edgembed.eval.residual import MAX_RESIDUAL_BITS, residual_scales

from .texts import builtin_texts

MIN_TEXTS = 50


def _floats(values: np.ndarray) -> list[float]:
    """float32 values as JSON numbers: each is the float32's exact value, so reading the
    manifest back gives the same float32 thresholds bit for bit."""
    return np.asarray(values, np.float32).tolist()


def calibrate(encoder: Encoder, texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Embed calibration texts (default: the built-in set) with the loaded package and return
    the manifest's `calibration` section: int8 ranges, residual-code scales and the mean
    vector."""
    chosen = list(texts) if texts is not None else builtin_texts("calibration")
    if len(chosen) < MIN_TEXTS:
        raise ExportError(f"calibration needs at least {MIN_TEXTS} texts, got {len(chosen)}")
    vectors = encoder.encode(chosen, kind="document")
    return {
        "texts": "edgembed built-in calibration set" if texts is None else "caller-supplied texts",
        "n_texts": len(chosen),
        "kind": "document",
        # sentence-transformers' int8 convention: per-dimension min/max of the calibration set
        "int8": {"lo": _floats(vectors.min(axis=0)), "hi": _floats(vectors.max(axis=0))},
        # residual codes: scales[l][j] = mean |residual after l levels| in dimension j
        "residual": {"bits": MAX_RESIDUAL_BITS,
                     "scales": [_floats(s) for s in residual_scales(vectors)]},
        # sign codes threshold at 0; the mean is kept so `edgembed eval` can show that a
        # calibrated centre measures worse on real data
        "sign_threshold": 0.0,
        "mean": _floats(vectors.mean(axis=0)),
    }
