"""Output quantization of embeddings: int8 and sign bits.

Pure numpy functions, shared by `Encoder.encode(precision=...)`, the `Index` and
`edgembed eval`. Conventions follow sentence-transformers' `quantize_embeddings`, so codes
made here can be mixed with codes made there:

* ``int8``: per-dimension ranges ``lo``/``hi``; ``step = (hi - lo) / 255``;
  ``code = clip(floor((x - lo) / step), 0, 255) - 128``. The ranges come from the package's
  calibration (embeddings of generic text at export time). Without calibration a
  normalised model falls back to the symmetric range [-1, 1], which every component of a
  unit vector lies in (coarser: MiniLM's components rarely exceed ±0.3).
* ``ubinary``: ``np.packbits(x > 0)`` rows, ``ceil(dim / 8)`` bytes (48 for 384 dims);
  this is the layout usearch's ``b1`` scalar kind reads.
* ``binary``: the same bytes minus 128, as int8 (sentence-transformers' "binary").
* ``uint8``: the int8 codes plus 128, as uint8 (sentence-transformers' "uint8").

The sign threshold is 0, not a calibrated centre: on SciFact a calibrated mean or median
centre measured worse (`edgembed eval` reports the comparison), so only 0 is kept.

Multi-bit residual codes, which only evaluation uses, are in `edgembed.eval.residual`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import EdgembedError

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
# the 8 bits of every byte value, np.packbits order: row b is np.unpackbits(b)
_BYTE_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32)
# above this many queries, unpacking the documents once beats a lookup table per query
_LUT_MAX_QUERIES = 16


def as_matrix(vectors: np.ndarray) -> tuple[np.ndarray, bool]:
    """A vector or a matrix as a matrix, and whether it was a single vector (so that every
    function here returns the shape it was given)."""
    array = np.asarray(vectors)
    if array.ndim == 1:
        return array[None, :], True
    if array.ndim != 2:
        raise EdgembedError(f"expected a vector or a matrix, got shape {array.shape}")
    return array, False


def code_bytes(dim: int) -> int:
    """Bytes of one packed sign code: ceil(dim / 8)."""
    return (dim + 7) // 8


# ---------------------------------------------------------------- int8

@dataclass(frozen=True)
class Int8Ranges:
    """Per-dimension quantization range; `source` says where it came from."""

    lo: np.ndarray
    hi: np.ndarray
    source: str

    @property
    def step(self) -> np.ndarray:
        """Width of one of the 256 buckets; 0 for a dimension that never varies."""
        return ((self.hi - self.lo) / 255.0).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"lo": self.lo.tolist(), "hi": self.hi.tolist(), "source": self.source}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Int8Ranges:
        return cls(np.asarray(data["lo"], np.float32), np.asarray(data["hi"], np.float32),
                   str(data.get("source", "stored")))


def int8_ranges(calibration: Mapping[str, Any] | None, dim: int, normalized: bool) -> Int8Ranges:
    """The package's calibrated ranges, or the documented fallback [-1, 1] for unit vectors."""
    section = (calibration or {}).get("int8")
    if section:
        try:
            ranges = Int8Ranges.from_json({**section, "source": "calibrated"})
        except (TypeError, ValueError, KeyError) as exc:
            raise EdgembedError(f"calibration int8 ranges are malformed: {exc!r:.120}") from None
        if ranges.lo.shape != (dim,) or ranges.hi.shape != (dim,):
            raise EdgembedError(f"calibration int8 ranges do not have {dim} dimensions")
        if not (np.isfinite(ranges.lo).all() and np.isfinite(ranges.hi).all()
                and (ranges.hi >= ranges.lo).all()):
            raise EdgembedError("calibration int8 ranges must be finite with hi >= lo")
        return ranges
    if not normalized:
        raise EdgembedError("int8 needs calibrated ranges for a model whose vectors are not "
                            "normalised; re-export the package (the exporter calibrates)")
    return Int8Ranges(np.full(dim, -1.0, np.float32), np.full(dim, 1.0, np.float32),
                      "fallback: [-1, 1] (package has no calibration)")


def quantize_int8(vectors: np.ndarray, ranges: Int8Ranges) -> np.ndarray:
    """Float vectors → int8 codes (sentence-transformers' formula; out-of-range values clip)."""
    x, single = as_matrix(vectors)
    step = ranges.step
    safe = np.where(step > 0, step, 1.0)
    codes = np.clip(np.floor((x - ranges.lo[: x.shape[1]]) / safe[: x.shape[1]]), 0, 255)
    codes = (codes - 128).astype(np.int8)
    return codes[0] if single else codes


def dequantize_int8(codes: np.ndarray, ranges: Int8Ranges) -> np.ndarray:
    """int8 codes → bucket centres (a dimension that never varied comes back as its value)."""
    c, single = as_matrix(codes)
    d = c.shape[1]
    out = (c.astype(np.float32) + 128.5) * ranges.step[:d] + ranges.lo[:d]
    return out[0] if single else out


def int8_scores(queries: np.ndarray, codes: np.ndarray, ranges: Int8Ranges) -> np.ndarray:
    """Dot products of float queries with dequantized int8 documents, without materialising
    the dequantized matrix: q.deq(c) = (q*step).c + q.(lo + 128.5*step)."""
    q, single = as_matrix(np.asarray(queries, np.float32))
    d = codes.shape[-1]
    step, lo = ranges.step[:d], ranges.lo[:d]
    scaled = q[:, :d] * step
    offset = q[:, :d] @ (lo + 128.5 * step)
    scores = scaled @ codes.astype(np.float32).T + offset[:, None]
    return scores[0] if single else scores


# ---------------------------------------------------------------- sign bits

def pack_signs(vectors: np.ndarray) -> np.ndarray:
    """Float vectors → packed sign bits (x > 0), `np.packbits` layout: sentence-transformers'
    "ubinary" and usearch's "b1"."""
    x, single = as_matrix(vectors)
    codes = np.packbits(x > 0, axis=1)
    return codes[0] if single else codes


def unpack_signs(codes: np.ndarray, dim: int) -> np.ndarray:
    """Packed sign bits → float32 ±1 vectors of length `dim`."""
    c, single = as_matrix(np.asarray(codes, np.uint8))
    signs = np.unpackbits(c, axis=1, count=dim).astype(np.float32) * 2.0 - 1.0
    return signs[0] if single else signs


def hamming_distances(query_codes: np.ndarray, doc_codes: np.ndarray) -> np.ndarray:
    """Hamming distances between packed codes: (queries, docs), or (docs,) for one query."""
    q, single = as_matrix(np.asarray(query_codes, np.uint8))
    docs = np.asarray(doc_codes, np.uint8)
    out = np.empty((q.shape[0], docs.shape[0]), dtype=np.int32)
    for i, row in enumerate(q):
        out[i] = np.bitwise_count(np.bitwise_xor(docs, row)).sum(axis=1, dtype=np.int32)
    return out[0] if single else out


def bit_dot(weights: np.ndarray, packed: np.ndarray) -> np.ndarray:
    """weights (queries, 8 * nbytes) . unpacked 0/1 bits of packed (docs, nbytes).

    For a few queries, a per-query table of the weighted sum of every byte value turns the
    dot product into one lookup per stored byte, without unpacking the documents. The
    asymmetric scores here and the residual codes' (`edgembed.eval.residual`) use it."""
    nbytes = packed.shape[1]
    w = np.zeros((weights.shape[0], 8 * nbytes), np.float32)
    w[:, :weights.shape[1]] = weights
    if weights.shape[0] > _LUT_MAX_QUERIES:
        return w @ np.unpackbits(packed, axis=1).T.astype(np.float32)
    offsets = packed + (np.arange(nbytes, dtype=np.int32) * 256)
    out = np.empty((w.shape[0], packed.shape[0]), np.float32)
    for i, row in enumerate(w):
        table = (row.reshape(nbytes, 8) @ _BYTE_BITS.T).ravel()
        out[i] = np.take(table, offsets).sum(axis=1)
    return out


def asymmetric_scores(queries: np.ndarray, doc_codes: np.ndarray) -> np.ndarray:
    """Float queries against ±1 documents: q.sign(d), computed as 2 q.b - sum(q) on 0/1 bits."""
    q, single = as_matrix(np.asarray(queries, np.float32))
    docs, _ = as_matrix(np.asarray(doc_codes, np.uint8))
    scores = 2.0 * bit_dot(q, docs) - q.sum(axis=1, keepdims=True)
    return scores[0] if single else scores


# ---------------------------------------------------------------- encode(precision=...)

def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    x, single = as_matrix(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    out = x / np.where(norms > 0, norms, 1.0)
    return out[0] if single else out


def truncate(vectors: np.ndarray, dims: int | None, normalize: bool) -> np.ndarray:
    """Matryoshka-style truncation to the first `dims` dimensions, re-normalised if the model's
    vectors are unit length. Only models trained for it keep their quality (MiniLM is not)."""
    if dims is None:
        return vectors
    x, single = as_matrix(vectors)
    if not isinstance(dims, int) or not 1 <= dims <= x.shape[1]:
        raise EdgembedError(f"dims must be an integer in 1..{x.shape[1]}, got {dims!r}")
    out = l2_normalize(x[:, :dims]) if normalize else x[:, :dims].copy()
    return out[0] if single else out


def quantize(vectors: np.ndarray, precision: str, ranges: Int8Ranges | None = None,
             dims: int | None = None, normalize: bool = True) -> np.ndarray:
    """Float embeddings → the requested precision, optionally keeping the first `dims` dims.

    int8 (and uint8) codes are per dimension, so with `dims` they are the first `dims` codes
    of the full vector (not re-normalised); sign bits do not depend on scale, so truncating
    then packing is the same as packing the truncated, re-normalised vector."""
    if precision not in PRECISIONS:
        raise EdgembedError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "float32":
        return truncate(vectors, dims, normalize).astype(np.float32, copy=False)
    if precision in ("int8", "uint8"):
        if ranges is None:
            raise EdgembedError(f"{precision} needs quantization ranges")
        codes = quantize_int8(vectors, ranges)
        if dims is not None:
            truncate(vectors, dims, normalize=False)  # validates dims
            codes = codes[..., :dims]
        return codes if precision == "int8" else (codes.astype(np.int16) + 128).astype(np.uint8)
    packed = pack_signs(truncate(vectors, dims, normalize=False))
    return packed if precision == "ubinary" else (packed.astype(np.int16) - 128).astype(np.int8)
