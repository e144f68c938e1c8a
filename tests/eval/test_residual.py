"""Multi-bit residual codes (edgembed.eval.residual): levels refine the sign code, decoding
and both scores agree with brute force."""

from __future__ import annotations

import numpy as np
import pytest

from edgembed import codes as C
from edgembed.errors import EdgembedError
from edgembed.eval import residual as R


@pytest.fixture(scope="module")
def vectors(default_encoder, sentences) -> np.ndarray:
    return default_encoder.encode(sentences[:120])


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_residual_codes(vectors, bits):
    scales = R.residual_scales(vectors)
    assert scales.shape == (4, 384)
    codes = R.residual_encode(vectors, scales, bits)
    assert codes.shape == (len(vectors), bits, 48)
    assert np.array_equal(codes[:, 0], C.pack_signs(vectors))  # level 1 is the sign code
    decoded = R.residual_decode(codes, scales)
    errors = [np.linalg.norm(R.residual_decode(R.residual_encode(vectors, scales, b), scales)
                             - vectors, axis=1).mean() for b in range(1, bits + 1)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:], strict=False))
    queries = vectors[:4]
    assert np.allclose(R.residual_scores(queries, codes, scales), queries @ decoded.T, atol=1e-4)
    coded_queries = R.residual_decode(R.residual_encode(queries, scales, bits), scales)
    assert np.allclose(R.residual_scores(queries, codes, scales, symmetric=True),
                       coded_queries @ decoded.T, atol=1e-4)
    with pytest.raises(EdgembedError, match="bits"):
        R.residual_encode(vectors, scales, 5)
