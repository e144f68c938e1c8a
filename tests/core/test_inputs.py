"""The input contract of `Encoder.encode` / `encode_iter`, fuzzed with hypothesis: every str
gives a finite unit vector, everything else a clear error, and streams stay bounded."""

from __future__ import annotations

import warnings
from collections import deque

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgembed import EdgembedError
from edgembed.encoder import WINDOW_BATCHES, check_texts
from edgembed.tokenizer import replace_lone_surrogates, tokenize

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Any code point, lone surrogates and control characters included (st.text leaves out
# surrogates by default), mixed with pieces known to trouble text pipelines.
any_piece = st.characters(codec=None, exclude_categories=()) | st.sampled_from(
    ["\x00", "\ud800", "\udfff", "\u202e", "\u200f", "\ufeff", "\ufffd", "😀", "👩‍👩‍👧", "\u0301",
     " ", "\n", "\r\n", "\t", "\x1b[31m", "\x7f", "\U0010ffff", "中文", "العربية", "word"])
any_text = st.lists(any_piece, max_size=40).map("".join)
# Texts the tokenizer reduces to nothing: whitespace, line breaks, control characters, NUL,
# U+FFFD and lone surrogates (which become U+FFFD).
blank_text = st.text(st.characters(categories=("Zs", "Zl", "Zp", "Cc", "Cs"))
                     | st.sampled_from(["\ufffd", "\x00"]), max_size=20)
not_str = st.sampled_from([None, b"bytes", bytearray(b"x"), 1, 1.5, True, ["a"], ("a",),
                           {"a": 1}, {"a"}, object(), np.float32(1.0)])


@FUZZ
@given(st.lists(any_text, max_size=6))
def test_any_texts_give_finite_unit_vectors(default_encoder, texts):
    vectors = default_encoder.encode(texts)
    assert vectors.shape == (len(texts), 384) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


@FUZZ
@given(any_text)
def test_single_text_is_deterministic_and_matches_its_row(default_encoder, text):
    vector = default_encoder.encode(text)
    assert vector.shape == (384,) and np.isfinite(vector).all()
    assert np.array_equal(vector, default_encoder.encode(text))
    assert np.array_equal(vector, default_encoder.encode([text])[0])


@FUZZ
@given(st.lists(any_text | any_text.map(lambda text: text * 40), min_size=1, max_size=6))
def test_fast_tokenization_gives_the_ids_of_a_full_encode(default_encoder, texts):
    """The encoder tokenizes without character offsets; the ids, truncation at
    max_seq_length included (`* 40` makes texts past 256 tokens), are those of a full
    `encode` of each text."""
    tokenizer = default_encoder.tokenizer
    texts = [replace_lone_surrogates(text) for text in texts]
    assert tokenize(tokenizer, texts) == [tokenizer.encode(text).ids for text in texts]


@FUZZ
@given(blank_text)
def test_blank_texts_embed_as_the_empty_text(default_encoder, text):
    """Documented: whitespace/control-only text is the model's empty input, [CLS] [SEP]."""
    assert np.array_equal(default_encoder.encode(text), default_encoder.encode(""))


@FUZZ
@given(st.lists(st.text(max_size=8), max_size=6), st.data(), not_str)
def test_non_str_item_is_named_by_position(default_encoder, texts, data, bad):
    position = data.draw(st.integers(0, len(texts)))
    texts = texts[:position] + [bad] + texts[position:]
    with pytest.raises(TypeError, match=rf"^texts\[{position}\] is {type(bad).__name__},"):
        default_encoder.encode(texts)
    stream = default_encoder.encode_iter(iter(texts), batch_size=2)
    with pytest.raises(TypeError, match=rf"^texts\[{position}\] is "):
        list(stream)


@pytest.mark.parametrize("texts", [None, 7, 2.5, b"abc", bytearray(b"abc"), memoryview(b"a"),
                                   {"a": "b"}, {"a", "b"}, frozenset({"a"}), {"a": 1}.keys(),
                                   np.array([["a", "b"]]), np.array("scalar"), object()])
def test_refused_containers_raise_type_error(default_encoder, texts):
    with pytest.raises(TypeError, match=r"^texts must be"):
        default_encoder.encode(texts)
    with pytest.raises(TypeError, match=r"^texts must be"):
        default_encoder.encode_iter(texts)
    with pytest.raises(TypeError, match=r"^texts must be"):
        check_texts(texts)


def test_accepted_containers_agree(default_encoder):
    texts = ["alpha beta", "", "gamma"]
    expected = default_encoder.encode(texts)
    for same in (tuple(texts), deque(texts), np.array(texts), (t for t in texts),
                 map(str, texts), iter(texts)):
        assert np.array_equal(default_encoder.encode(same), expected)
    assert check_texts("one text") == ["one text"]
    assert type(check_texts(np.array(["x"]))[0]) is str


@pytest.mark.parametrize("options", [
    {"batch_size": 0}, {"batch_size": -3}, {"batch_size": True}, {"batch_size": 2.0},
    {"batch_size": "8"}, {"batch_size": None}, {"batch_size": [4]},
    {"precision": "float16"}, {"precision": None}, {"precision": ["int8"]},
    {"precision": np.array(["int8", "binary"])},
    {"kind": "passage"}, {"kind": 0}, {"kind": ["query"]},
    # kind=None is the default; prompts: unknown names, non-strings, two choices at once
    {"prompt_name": "query"}, {"prompt_name": 5}, {"prompt": b"query: "}, {"prompt": 3},
    {"kind": "query", "prompt": ""}, {"kind": "document", "prompt_name": "query"},
    {"dims": 0}, {"dims": 385}, {"dims": True}, {"dims": 3.0}, {"dims": "8"}, {"dims": -1},
])
def test_bad_options_raise_edgembed_error_before_reading_texts(default_encoder, options):
    pulled = []

    def texts():
        pulled.append(1)
        yield "never read"

    with pytest.raises(EdgembedError):
        default_encoder.encode(texts(), **options)
    with pytest.raises(EdgembedError):
        default_encoder.encode_iter(texts(), **options)
    assert not pulled


def test_numpy_integers_are_accepted_as_options(default_encoder):
    vectors = default_encoder.encode(["a", "b"], batch_size=np.int64(1), dims=np.int32(8))
    assert vectors.shape == (2, 8)


@FUZZ
@given(st.lists(any_text, max_size=40), st.integers(1, 5),
       st.sampled_from(["float32", "int8", "ubinary", "binary"]),
       st.sampled_from([None, 16, 384]))
def test_encode_iter_concatenates_to_encode(default_encoder, texts, batch_size, precision, dims):
    """Same windows, same batches: identical rows, even for batch-dependent dynamic int8."""
    expected = default_encoder.encode(texts, batch_size=batch_size, precision=precision,
                                      dims=dims)
    chunks = list(default_encoder.encode_iter(iter(texts), batch_size=batch_size,
                                              precision=precision, dims=dims))
    assert all(1 <= len(chunk) <= batch_size for chunk in chunks)
    got = np.concatenate(chunks) if chunks else expected[:0]
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_encode_iter_reads_at_most_one_window_ahead(default_encoder):
    """A million-text generator: rows come out after one window is read, and the reader
    never runs more than batch_size × WINDOW_BATCHES texts ahead of what was yielded."""
    batch_size, window = 4, 4 * WINDOW_BATCHES
    pulled = 0

    def million():
        nonlocal pulled
        for i in range(1_000_000):
            pulled += 1
            yield f"text {i}"

    stream = default_encoder.encode_iter(million(), batch_size=batch_size)
    assert pulled == 0  # nothing is read before the first row is asked for
    yielded, ahead = 0, []
    for chunk in stream:
        yielded += len(chunk)
        ahead.append(pulled - yielded)
        if yielded >= 3 * window:
            break
    assert max(ahead) <= window
    assert pulled <= 4 * window  # three windows consumed, the fourth not yet started


def test_encode_accepts_a_generator(default_encoder):
    texts = [f"sentence number {i}" for i in range(40)]
    assert np.array_equal(default_encoder.encode(t for t in texts), default_encoder.encode(texts))


def test_huge_texts_in_a_stream_are_counted_once(default_encoder):
    huge = "word " * 220_000  # 1.1 MB
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = list(default_encoder.encode_iter([huge, "short", huge], batch_size=1))
    cut = [w for w in caught if "longer than" in str(w.message)]
    assert len(rows) == 3 and len(cut) == 1
    assert str(cut[0].message).startswith("2 text(s) longer than")
    assert cut[0].filename == __file__  # points at the caller, not at edgembed


def test_every_precision_on_awkward_text(default_encoder):
    texts = ["", "\x00", "\ud800\udfff\udc00", "\u202eRTL", "👩‍👩‍👧‍👦" * 50, "a" * 10_000]
    for precision, dtype, width in [("float32", np.float32, 384), ("int8", np.int8, 384),
                                    ("ubinary", np.uint8, 48), ("binary", np.int8, 48)]:
        codes = default_encoder.encode(texts, precision=precision)
        assert codes.dtype == dtype and codes.shape == (len(texts), width)
