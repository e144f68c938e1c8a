"""sentence-transformers-style calls: `encode`'s keywords, `similarity`,
`get_sentence_embedding_dimension`, and refusals of what would mean something else."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from conftest import set_manifest
from edgembed import EdgembedError, Encoder
from edgembed import codes as C

TEXTS = ["A man is eating food.", "A man is riding a horse.", "The stock market fell.",
         "Someone is having a meal."]


@pytest.fixture(scope="module")
def unnormalised_encoder(tmp_path_factory, default_encoder):
    """The default package, declared as not normalising its vectors: `dims` then keeps
    truncated rows as they are, which is what `normalize_embeddings` must fix."""
    package = tmp_path_factory.mktemp("unnormalised") / "pkg"
    shutil.copytree(default_encoder.path, package)
    set_manifest(package, normalized=False)
    return Encoder.load(package, verify=False)


def test_accepted_keywords_give_what_encode_gives(default_encoder):
    plain = default_encoder.encode(TEXTS)
    styled = default_encoder.encode(TEXTS, batch_size=32, show_progress_bar=False,
                                    convert_to_numpy=True, normalize_embeddings=True,
                                    convert_to_tensor=False, device="cpu",
                                    output_value="sentence_embedding", truncate_dim=None)
    assert isinstance(styled, np.ndarray) and np.array_equal(styled, plain)
    assert default_encoder.encode(TEXTS[0], normalize_embeddings=True).shape == (384,)


def test_normalize_embeddings_scales_rows_after_truncation(unnormalised_encoder):
    truncated = unnormalised_encoder.encode(TEXTS, dims=128)
    norms = np.linalg.norm(truncated, axis=1)
    assert (norms < 0.99).all(), norms  # the first 128 of 384 unit components
    unit = unnormalised_encoder.encode(TEXTS, dims=128, normalize_embeddings=True)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    assert np.allclose(unit, truncated / norms[:, None], atol=1e-6)
    bits = unnormalised_encoder.encode(TEXTS, precision="ubinary", normalize_embeddings=True)
    assert np.array_equal(bits, unnormalised_encoder.encode(TEXTS, precision="ubinary"))


def test_normalize_embeddings_with_int8_of_an_unnormalised_model_is_refused(
        unnormalised_encoder):
    for precision in ("int8", "uint8"):
        with pytest.raises(EdgembedError, match="calibrated on its unnormalised"):
            unnormalised_encoder.encode(TEXTS, precision=precision, normalize_embeddings=True)


def test_uint8_is_int8_plus_128(default_encoder):
    int8 = default_encoder.encode(TEXTS, precision="int8")
    uint8 = default_encoder.encode(TEXTS, precision="uint8")
    assert uint8.dtype == np.uint8 and uint8.shape == (4, 384)
    assert np.array_equal(uint8.astype(np.int16) - 128, int8)
    assert np.array_equal(default_encoder.encode(TEXTS, precision="uint8", dims=64),
                          uint8[:, :64])


def test_show_progress_bar_is_show_progress(default_encoder, capsys):
    default_encoder.encode(TEXTS, show_progress_bar=True)
    assert "4/4" in capsys.readouterr().err
    with pytest.raises(EdgembedError, match="disagree"):
        default_encoder.encode(TEXTS, show_progress=False, show_progress_bar=True)


@pytest.mark.parametrize(("keyword", "value", "reason"), [
    ("convert_to_numpy", False, "torch.from_numpy"),
    ("convert_to_tensor", True, "torch.from_numpy"),
    ("device", "cuda", "providers"),
    ("output_value", "token_embeddings", "sentence embeddings only"),
    ("output_value", None, "sentence embeddings only"),
    ("truncate_dim", 128, "dims="),
    ("pool", {"processes": []}, "thread-safe"),
    ("chunk_size", 64, "thread-safe"),
])
def test_keywords_that_mean_something_else_are_refused(default_encoder, keyword, value,
                                                       reason):
    with pytest.raises(EdgembedError, match=f"{keyword}=.*not supported: .*{reason}"):
        default_encoder.encode(TEXTS, **{keyword: value})


def test_unknown_keyword_is_a_type_error(default_encoder):
    with pytest.raises(TypeError, match="unexpected keyword argument 'normalise'"):
        default_encoder.encode(TEXTS, normalise=True)
    with pytest.raises(EdgembedError, match="normalize_embeddings must be True or False"):
        default_encoder.encode(TEXTS, normalize_embeddings="yes")


def test_similarity_is_the_cosine_matrix(default_encoder):
    vectors = default_encoder.encode(TEXTS)
    scores = default_encoder.similarity(vectors, vectors)
    assert scores.shape == (4, 4) and scores.dtype == np.float32
    assert np.allclose(np.diag(scores), 1.0, atol=1e-5)
    assert scores[0, 3] > scores[0, 2]  # eating food ~ having a meal, not stocks
    scaled = default_encoder.similarity(vectors * 3.0, [list(map(float, vectors[1]))])
    assert scaled.shape == (4, 1) and np.allclose(scaled[:, 0], scores[:, 1], atol=1e-5)
    assert default_encoder.similarity(vectors[0], vectors[1]).shape == (1, 1)


def test_similarity_refuses_codes_and_mismatched_dimensions(default_encoder):
    vectors = default_encoder.encode(TEXTS)
    with pytest.raises(EdgembedError, match="float vectors"):
        default_encoder.similarity(default_encoder.encode(TEXTS, precision="int8"), vectors)
    with pytest.raises(EdgembedError, match="384 dimensions, embeddings2 128"):
        default_encoder.similarity(vectors, vectors[:, :128])
    with pytest.raises(EdgembedError, match="NaN"):
        default_encoder.similarity(np.full(384, np.nan), vectors)


def test_get_sentence_embedding_dimension(default_encoder):
    assert default_encoder.get_sentence_embedding_dimension() == 384


@pytest.mark.slow
def test_similarity_and_uint8_match_sentence_transformers(default_encoder):
    """The reference implementations themselves (this imports torch)."""
    st_util = pytest.importorskip("sentence_transformers.util")
    vectors = default_encoder.encode(TEXTS)
    assert np.allclose(default_encoder.similarity(vectors, vectors[:2]),
                       st_util.cos_sim(vectors, vectors[:2]).numpy(), atol=1e-6)
    ranges = default_encoder.int8_ranges
    table = np.vstack([ranges.lo, ranges.hi])
    for precision in ("int8", "uint8"):
        assert np.array_equal(default_encoder.encode(TEXTS, precision=precision),
                              st_util.quantize_embeddings(vectors, precision, ranges=table))
    assert np.array_equal(C.quantize(vectors, "uint8", ranges),
                          default_encoder.encode(TEXTS, precision="uint8"))
