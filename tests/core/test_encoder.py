from __future__ import annotations

import numpy as np
import pytest

from conftest import cosines
from edgembed import EdgembedError, Encoder


@pytest.mark.slow
def test_fp32_package_matches_sentence_transformers(fp32_package, sentences, torch_reference):
    assert len(sentences) >= 100
    vectors = Encoder.load(fp32_package).encode(sentences)
    agreement = cosines(vectors, torch_reference)
    assert agreement.mean() >= 0.9999, agreement.mean()
    assert agreement.min() >= 0.999, agreement.min()


@pytest.mark.slow
def test_long_text_uses_max_seq_length_not_tokenizer_json_128(fp32_package, minilm_source):
    """MiniLM's tokenizer.json truncates at 128; the package says 256 and must win."""
    from sentence_transformers import SentenceTransformer

    text = " ".join(f"token{i} science" for i in range(200))
    reference = SentenceTransformer(str(minilm_source), device="cpu").encode([text])
    encoder = Encoder.load(fp32_package)
    assert len(encoder.tokenizer.encode(text).ids) == 256
    assert cosines(encoder.encode([text]), reference)[0] >= 0.9999


@pytest.fixture(scope="module")
def fp32_encoder(fp32_package):
    """fp32 is batch-independent, so batched and one-by-one results must agree exactly.
    (Dynamic int8 is not: its activation scales depend on the whole batch.)"""
    return Encoder.load(fp32_package)


@pytest.mark.slow
def test_input_order_preserved_with_duplicates_and_empty_strings(fp32_encoder, sentences):
    texts = ["", sentences[0], "short", sentences[5] * 3, "", "short", sentences[0], "a " * 400]
    batched = fp32_encoder.encode(texts, batch_size=3)
    one_by_one = np.stack([fp32_encoder.encode([text])[0] for text in texts])
    assert batched.shape == (len(texts), 384)
    assert np.allclose(batched, one_by_one, atol=1e-5)
    assert np.array_equal(batched[1], batched[6]) and np.array_equal(batched[2], batched[5])
    assert np.array_equal(batched[0], batched[4])


@pytest.mark.slow
def test_order_preserved_across_windows(fp32_encoder, sentences):
    """More texts than one sorting window (batch_size × 16) must still come back in order."""
    texts = [f"{sentences[i % 20]} #{i}" for i in range(70)]
    batched = fp32_encoder.encode(texts, batch_size=2)
    one_by_one = np.stack([fp32_encoder.encode(text) for text in texts])
    assert np.allclose(batched, one_by_one, atol=1e-5)


def test_empty_list_gives_zero_rows(default_encoder):
    result = default_encoder.encode([])
    assert result.shape == (0, 384) and result.dtype == np.float32


def test_single_string_gives_vector(default_encoder):
    vector = default_encoder.encode("hello")
    assert vector.shape == (384,)
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-3)


def test_query_prefix_applied(prefixed_encoder):
    encoder = prefixed_encoder
    assert np.allclose(encoder.encode(["cats"], kind="query"), encoder.encode(["query: cats"]))
    assert not np.allclose(encoder.encode(["cats"], kind="query"), encoder.encode(["cats"]))


def test_bad_arguments_raise_clear_errors(default_encoder):
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        default_encoder.encode(["ok", None])
    with pytest.raises(EdgembedError, match="precision"):
        default_encoder.encode(["ok"], precision="float16")
    with pytest.raises(EdgembedError, match="kind"):
        default_encoder.encode(["ok"], kind="passage")
    with pytest.raises(EdgembedError, match="batch_size"):
        default_encoder.encode(["ok"], batch_size=0)
    with pytest.raises(EdgembedError, match="provider"):
        Encoder.load(providers=["NoSuchExecutionProvider"])


def test_properties(default_encoder):
    assert default_encoder.dim == 384
    assert default_encoder.path.is_dir()
    assert default_encoder.manifest.name == "all-minilm-l6-v2"
    assert default_encoder.manifest.max_seq_length == 256


@pytest.mark.slow
def test_awkward_unicode_has_a_defined_result(fp32_encoder):
    texts = ["", "   \t\n", "nul\x00inside", "lone \ud800 surrogate", "\u202eRTL override",
             "😀🚀 emoji", "e\u0301 combining", "中文文本", "\x07\x1b[31mcontrol"]
    vectors = fp32_encoder.encode(texts)
    assert vectors.shape == (len(texts), 384) and np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    replaced = fp32_encoder.encode("lone \ufffd surrogate")
    assert np.allclose(vectors[3], replaced, atol=1e-4)


@pytest.mark.slow
def test_huge_text_is_cut_with_a_counted_warning(fp32_encoder):
    from edgembed.encoder import CHARS_PER_TOKEN

    limit = fp32_encoder.max_seq_length * CHARS_PER_TOKEN
    huge = "word " * 250_000  # 1.25 MB
    with pytest.warns(UserWarning, match=r"^1 text\(s\) longer than"):
        vectors = fp32_encoder.encode([huge, "short"])
    assert np.allclose(vectors[0], fp32_encoder.encode(huge[:limit]), atol=1e-5)


@pytest.mark.slow
def test_encode_with_usage_matches_encode_and_count_tokens(fp32_encoder, sentences):
    """One tokenization serves both: rows as `encode`, counts as `count_tokens`, in input
    order across sorting windows; the empty text reads [CLS] [SEP], a long one is truncated."""
    texts = [f"{sentences[i % 20]} #{i}" for i in range(40)] + ["", "a " * 400]
    vectors, tokens = fp32_encoder.encode_with_usage(texts, kind="query", batch_size=2)
    assert np.allclose(vectors, fp32_encoder.encode(texts, kind="query"), atol=1e-5)
    assert np.array_equal(tokens, fp32_encoder.count_tokens(texts, kind="query"))
    assert tokens[-2] == 2 and tokens[-1] == fp32_encoder.max_seq_length
    with pytest.raises(EdgembedError, match="batch_size"):
        fp32_encoder.encode_with_usage(texts, batch_size=0)
