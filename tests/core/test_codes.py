"""Output quantization: packing layouts, round trips, scores, and encode(precision=...)."""

from __future__ import annotations

import numpy as np
import pytest

from edgembed import codes as C
from edgembed.errors import EdgembedError


@pytest.fixture(scope="module")
def vectors(default_encoder, sentences) -> np.ndarray:
    return default_encoder.encode(sentences[:120])


@pytest.fixture(scope="module")
def ranges(vectors) -> C.Int8Ranges:
    return C.Int8Ranges(vectors.min(axis=0), vectors.max(axis=0), "test")


def test_sign_codes_match_packbits_and_usearch_layout(vectors):
    packed = C.pack_signs(vectors)
    assert packed.shape == (len(vectors), 48) and packed.dtype == np.uint8
    assert np.array_equal(packed, np.packbits(vectors > 0, axis=1))
    signs = C.unpack_signs(packed, 384)
    assert np.array_equal(signs, np.where(vectors > 0, 1.0, -1.0))
    odd = C.pack_signs(vectors[:, :100])  # not a multiple of 8: zero-padded last byte
    assert odd.shape == (len(vectors), 13)


@pytest.mark.slow
def test_quantize_matches_sentence_transformers(vectors, ranges):
    st = pytest.importorskip("sentence_transformers.quantization")
    table = np.vstack([ranges.lo, ranges.hi])
    assert np.array_equal(C.quantize(vectors, "int8", ranges),
                          st.quantize_embeddings(vectors, "int8", ranges=table))
    for precision in ("binary", "ubinary"):
        assert np.array_equal(C.quantize(vectors, precision),
                              st.quantize_embeddings(vectors, precision))


def test_int8_round_trip_and_scores(vectors, ranges):
    codes = C.quantize_int8(vectors, ranges)
    back = C.dequantize_int8(codes, ranges)
    assert np.all(np.abs(back - vectors) <= ranges.step / 2 + 1e-6)
    queries = vectors[:7]
    assert np.allclose(C.int8_scores(queries, codes, ranges), queries @ back.T, atol=1e-4)
    assert np.allclose(C.int8_scores(queries[0], codes, ranges), queries[0] @ back.T, atol=1e-4)
    outside = C.quantize_int8(np.stack([ranges.lo - 1, ranges.hi + 1]), ranges)
    assert outside[0].min() == -128 and outside[1].max() == 127


def test_int8_constant_dimension_round_trips_exactly(vectors):
    """A dimension that never varied in calibration has hi == lo, so step 0: its codes must
    not divide by zero, and it dequantizes to its one value, exactly. (No dimension of MiniLM's
    vectors is constant; a constant one is made here.)"""
    constant = vectors.copy()
    constant[:, [5, 200]] = [0.125, -0.03]
    ranges = C.Int8Ranges(constant.min(axis=0), constant.max(axis=0), "test")
    assert np.flatnonzero(ranges.hi == ranges.lo).tolist() == [5, 200]
    codes = C.quantize_int8(constant, ranges)
    assert np.all(codes[:, [5, 200]] == -128)
    back = C.dequantize_int8(codes, ranges)
    assert np.array_equal(back[:, [5, 200]], constant[:, [5, 200]])
    assert np.all(np.abs(back - constant) <= ranges.step / 2 + 1e-6)
    assert np.allclose(C.int8_scores(constant[:3], codes, ranges), constant[:3] @ back.T,
                       atol=1e-4)


def test_int8_fallback_without_calibration():
    fallback = C.int8_ranges(None, 384, normalized=True)
    assert "fallback" in fallback.source
    assert np.all(fallback.lo == -1) and np.all(fallback.hi == 1)
    with pytest.raises(EdgembedError, match="calibrat"):
        C.int8_ranges(None, 384, normalized=False)
    with pytest.raises(EdgembedError, match="384"):
        C.int8_ranges({"int8": {"lo": [0.0], "hi": [1.0]}}, 384, normalized=True)


def test_hamming_and_asymmetric_scores_match_brute_force(vectors):
    packed = C.pack_signs(vectors)
    bits = vectors > 0
    brute = (bits[:5, None, :] != bits[None, :, :]).sum(axis=2)
    assert np.array_equal(C.hamming_distances(packed[:5], packed), brute)
    signs = np.where(vectors > 0, 1.0, -1.0)
    for queries in (vectors[:3], vectors[:40], vectors[0]):  # lookup-table and unpack paths
        assert np.allclose(C.asymmetric_scores(queries, packed), queries @ signs.T, atol=1e-4)


@pytest.mark.parametrize("nbytes", [1, 5, 48, 49])
def test_hamming_distances_count_every_bit(nbytes):
    """Codes of any width (not only multiples of 8 bytes) count each differing bit once."""
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, size=(3, nbytes), dtype=np.uint8)
    docs = rng.integers(0, 256, size=(7, nbytes), dtype=np.uint8)
    expected = np.array([[sum(bin(int(a) ^ int(b)).count("1") for a, b in zip(q, d, strict=True))
                          for d in docs] for q in queries])
    assert np.array_equal(C.hamming_distances(queries, docs), expected)


def test_encode_precisions(default_encoder, sentences):
    texts = sentences[:10]
    floats = default_encoder.encode(texts)
    int8 = default_encoder.encode(texts, precision="int8")
    assert int8.dtype == np.int8 and int8.shape == (10, 384)
    assert np.array_equal(int8, C.quantize_int8(floats, default_encoder.int8_ranges))
    ubinary = default_encoder.encode(texts, precision="ubinary")
    assert ubinary.dtype == np.uint8 and ubinary.shape == (10, 48)
    assert np.array_equal(ubinary, np.packbits(floats > 0, axis=1))
    binary = default_encoder.encode(texts, precision="binary")
    assert binary.dtype == np.int8 and np.array_equal(binary.view(np.uint8) ^ 0x80, ubinary)
    assert default_encoder.encode("one", precision="ubinary").shape == (48,)


def test_encode_dims(default_encoder, sentences):
    texts = sentences[:5]
    floats = default_encoder.encode(texts)
    short = default_encoder.encode(texts, dims=128)
    assert short.shape == (5, 128)
    assert np.allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert np.allclose(short, floats[:, :128] / np.linalg.norm(floats[:, :128], axis=1,
                                                               keepdims=True), atol=1e-6)
    assert default_encoder.encode(texts, precision="ubinary", dims=128).shape == (5, 16)
    assert default_encoder.encode(texts, precision="int8", dims=64).shape == (5, 64)
    with pytest.raises(EdgembedError, match="dims"):
        default_encoder.encode(texts, dims=1000)
