"""Multi-bit residual codes of embeddings and their scores: a middle ground between sign
bits and int8 that `edgembed eval` measures (the exporter fits their scales into the
package's calibration); the Index does not use them.

Residual codes (BEBR-style, B = 2..4 bits per dimension): level 1 is ``sign(x)`` with
per-dimension scale ``s1 = mean|x|`` over the calibration set; level l codes the sign of
what is left, ``r_{l-1} = x - sum_{i<l} s_i * b_i``, with ``s_l = mean|r_{l-1}|``. A document
is reconstructed as ``x_hat = sum_l s_l * b_l`` (b in {-1, +1}); the asymmetric score of a
float query is ``q . x_hat`` and the symmetric one ``x_hat_q . x_hat_d``.
"""

from __future__ import annotations

import numpy as np

from ..codes import as_matrix, bit_dot, unpack_signs
from ..errors import EdgembedError

MAX_RESIDUAL_BITS = 4


def residual_scales(calibration_vectors: np.ndarray, bits: int = MAX_RESIDUAL_BITS) -> np.ndarray:
    """Per-level, per-dimension scales (bits, dim) fitted on calibration embeddings."""
    _check_bits(bits)
    residual = np.asarray(calibration_vectors, np.float64)
    scales = []
    for _ in range(bits):
        signs = np.where(residual > 0, 1.0, -1.0)
        scale = np.abs(residual).mean(axis=0)
        scales.append(scale)
        residual = residual - scale * signs
    return np.asarray(scales, dtype=np.float32)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= MAX_RESIDUAL_BITS:
        raise EdgembedError(f"residual codes have 1..{MAX_RESIDUAL_BITS} bits, got {bits!r}")


def residual_encode(vectors: np.ndarray, scales: np.ndarray, bits: int = 2) -> np.ndarray:
    """Float vectors → (n, bits, ceil(dim/8)) packed sign planes, level 1 first."""
    _check_bits(bits)
    if scales.shape[0] < bits:
        raise EdgembedError(f"{bits}-bit codes need {bits} calibrated scale levels, "
                            f"the package has {scales.shape[0]}")
    residual = np.asarray(vectors, np.float32)
    residual, single = as_matrix(residual)
    residual = residual.copy()
    planes = []
    for level in range(bits):
        positive = residual > 0
        planes.append(np.packbits(positive, axis=1))
        residual -= scales[level] * np.where(positive, 1.0, -1.0).astype(np.float32)
    codes = np.stack(planes, axis=1)
    return codes[0] if single else codes


def residual_decode(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Residual codes → reconstructed float vectors x_hat = sum_l s_l * b_l."""
    c = np.asarray(codes, np.uint8)
    single = c.ndim == 2
    if single:
        c = c[None]
    dim = scales.shape[1]
    out = np.zeros((c.shape[0], dim), dtype=np.float32)
    for level in range(c.shape[1]):
        out += scales[level] * unpack_signs(c[:, level], dim)
    return out[0] if single else out


def residual_scores(queries: np.ndarray, codes: np.ndarray, scales: np.ndarray,
                    symmetric: bool = False) -> np.ndarray:
    """Scores of float queries against residual-coded documents: asymmetric q.x_hat, or
    symmetric x_hat_q.x_hat_d (the query coded with the same number of bits)."""
    q, single = as_matrix(np.asarray(queries, np.float32))
    c = np.asarray(codes, np.uint8)
    c = c[None] if c.ndim == 2 else c
    bits, nbytes = c.shape[1], c.shape[2]
    if symmetric:
        q = residual_decode(residual_encode(q, scales, bits), scales)
        q = q[None] if q.ndim == 1 else q
    # q.x_hat = sum_l (q*s_l).(2 b_l - 1) over the levels' 0/1 bit planes
    weights = np.zeros((q.shape[0], bits, 8 * nbytes), np.float32)
    weights[:, :, :q.shape[1]] = q[:, None, :] * scales[:bits]
    flat = weights.reshape(q.shape[0], -1)
    scores = 2.0 * bit_dot(flat, c.reshape(len(c), -1)) - flat.sum(axis=1, keepdims=True)
    return scores[0] if single else scores
