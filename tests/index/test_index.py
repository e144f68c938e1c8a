"""The persistent Index: search cascade vs brute force, persistence, views, model checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgembed import Encoder, Hit, Index
from edgembed import codes as C
from edgembed.errors import EdgembedError, IndexWriteError
from edgembed.index.cascade import OVERFETCH


@pytest.fixture(scope="module")
def corpus(sentences) -> list[str]:
    return sentences[:150]


@pytest.fixture(scope="module")
def doc_vectors(default_encoder, corpus) -> np.ndarray:
    return default_encoder.encode(corpus)


@pytest.fixture(scope="module")
def query_vectors(default_encoder, sentences) -> np.ndarray:
    return default_encoder.encode(sentences[150:170], kind="query")


@pytest.fixture
def index(tmp_path, default_encoder, corpus, doc_vectors) -> Index:
    built = Index.create(tmp_path / "index", default_encoder)
    built.add_vectors(doc_vectors, texts=corpus, ids=[f"doc-{i}" for i in range(len(corpus))],
                      metadata=[{"n": i} for i in range(len(corpus))])
    built.save()
    return built


def brute_force(index: Index, docs: np.ndarray, query: np.ndarray, k: int, rescore: int):
    """The documented cascade in plain numpy: Hamming top pool (+ ties), asymmetric refine
    to k·rescore, int8 rescoring to k."""
    keep = k * max(rescore, 1)
    pool = min(len(docs), OVERFETCH * keep)
    distances = C.hamming_distances(C.pack_signs(query), C.pack_signs(docs))
    threshold = np.sort(distances)[pool - 1]
    candidates = np.flatnonzero(distances <= threshold)
    signs = np.where(docs[candidates] > 0, 1.0, -1.0)
    refined = candidates[np.argsort(-(signs @ query), kind="stable")[:keep]]
    if not rescore:
        return refined[:k]
    deq = C.dequantize_int8(C.quantize_int8(docs[refined], index.ranges), index.ranges)
    return refined[np.argsort(-(deq @ query), kind="stable")[:k]]


@pytest.mark.parametrize("k,rescore", [(1, 4), (2, 2), (3, 0), (5, 4), (10, 20)])
def test_search_matches_brute_force(index, doc_vectors, query_vectors, k, rescore):
    results = index.rank_vectors(query_vectors, k=k, rescore=rescore)
    for query, (keys, scores) in zip(query_vectors, results, strict=True):
        expected = brute_force(index, doc_vectors, query, k, rescore)
        assert list(keys) == list(expected)  # keys are row numbers: added in order
        assert np.all(np.diff(scores) <= 1e-6)
    if rescore:  # int8 scores approximate the float cosine
        keys, scores = results[0]
        assert np.allclose(scores, doc_vectors[keys.astype(int)] @ query_vectors[0], atol=0.02)


def test_text_search_returns_hits(index, corpus):
    hits = index.search(corpus[3], k=3)
    assert hits[0].id == "doc-3" and hits[0].text == corpus[3] and hits[0].metadata == {"n": 3}
    assert hits[0].score == pytest.approx(1.0, abs=0.05)
    batch = index.search([corpus[3], corpus[7]], k=2)
    assert [len(row) for row in batch] == [2, 2] and batch[1][0].id == "doc-7"


def test_save_open_search_identical(index, default_encoder, query_vectors):
    before = index.rank_vectors(query_vectors, k=10)
    reopened = Index.open(index.path, encoder=default_encoder)
    after = reopened.rank_vectors(query_vectors, k=10)
    for (k1, s1), (k2, s2) in zip(before, after, strict=True):
        assert np.array_equal(k1, k2) and np.array_equal(s1, s2)
    assert len(reopened) == len(index) == 150
    assert reopened.search("anything", k=1)[0].text is not None


def test_view_memory_maps_read_only(index, default_encoder, query_vectors, corpus):
    view = Index.open(index.path, encoder=default_encoder, view=True)
    assert isinstance(view._int8, np.memmap) and isinstance(view._codes, np.memmap)
    assert [k.tolist() for k, _ in view.rank_vectors(query_vectors, k=5)] == \
        [k.tolist() for k, _ in index.rank_vectors(query_vectors, k=5)]
    assert view.search(corpus[0], k=1)[0].id == "doc-0"
    with pytest.raises(EdgembedError, match="read-only"):
        view.add(["more"])
    with pytest.raises(EdgembedError, match="read-only"):
        view.remove("doc-0")
    view.close()


def test_open_without_encoder_uses_recorded_package(index):
    reopened = Index.open(index.path)
    assert reopened.encoder.package.package_id == index.encoder.package.package_id


def test_mismatched_model_refused(index, tmp_path, default_encoder):
    other = tmp_path / "other-model"
    shutil.copytree(default_encoder.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["name"] = "some-other-model"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EdgembedError, match="built with model all-minilm-l6-v2@"):
        Index.open(index.path, encoder=Encoder.load(other))


def test_remove(index, default_encoder, corpus):
    assert index.search(corpus[5], k=1)[0].id == "doc-5"
    assert index.remove(["doc-5", "doc-6", "no-such-id"]) == 2
    assert len(index) == 148
    assert all(hit.id not in {"doc-5", "doc-6"} for hit in index.search(corpus[5], k=20))
    index.save()
    reopened = Index.open(index.path, encoder=default_encoder)
    assert len(reopened) == 148
    assert all(hit.id not in {"doc-5", "doc-6"} for hit in reopened.search(corpus[5], k=20))
    reopened.add([corpus[5]], ids=["doc-5"])  # a removed id may come back
    assert reopened.search(corpus[5], k=1)[0].id == "doc-5"


def test_get_by_id(index, corpus):
    """In the order asked, unknown ids skipped; the writer sees its unsaved changes."""
    assert index.get(["doc-3", "nope", "doc-1"]) == [("doc-3", corpus[3], {"n": 3}),
                                                      ("doc-1", corpus[1], {"n": 1})]
    assert index.get("doc-0") == [("doc-0", corpus[0], {"n": 0})]
    index.add(["fresh text"], ids=[7])
    index.remove("doc-0")
    assert index.get([7, "doc-0"]) == [(7, "fresh text", None)]
    with pytest.raises(TypeError, match="ids must be an id"):
        index.get(b"doc-0")


def test_add_texts_ids_and_errors(tmp_path, default_encoder):
    index = Index.create(tmp_path / "fresh", default_encoder)
    assert index.search("empty", k=3) == []
    ids = index.add(["alpha beta", "gamma delta"], metadata=[{"a": 1}, None])
    assert ids == [0, 1]
    assert index.add(["epsilon"], ids=["e"]) == ["e"]
    hit = index.search("alpha beta", k=1)[0]
    assert hit.id == 0 and hit.metadata == {"a": 1}
    with pytest.raises(EdgembedError, match="already in the index"):
        index.add(["again"], ids=["e"])
    with pytest.raises(EdgembedError, match="unique"):
        index.add(["x", "y"], ids=["same", "same"])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        index.add(["ok", None])
    with pytest.raises(EdgembedError, match="shape"):
        index.add_vectors(np.zeros((2, 10), np.float32))
    with pytest.raises(EdgembedError, match="rescore"):
        index.search("x", rescore=-1)
    with pytest.raises(EdgembedError, match="already holds an index"):
        Index.create(tmp_path / "fresh", default_encoder)


def test_unsaved_changes_are_not_on_disk_and_context_manager_saves(tmp_path, default_encoder):
    path = tmp_path / "ctx"
    index = Index.create(path, default_encoder)
    index.add(["not saved"])
    index.close()
    assert len(Index.open(path, encoder=default_encoder)) == 0
    with Index.open(path, encoder=default_encoder) as index:
        index.add(["saved on exit"], ids=["s"])
    reopened = Index.open(path, encoder=default_encoder)
    assert len(reopened) == 1 and reopened.search("saved", k=1)[0].id == "s"


def test_failed_save_keeps_previous_index(index, default_encoder, monkeypatch):
    index.add(["a new document that will not make it"], ids=["late"])
    original = np.save

    def failing_save(path, array, *args, **kwargs):
        if str(path).endswith("int8.npy"):
            raise OSError(28, "No space left on device")
        return original(path, array, *args, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(IndexWriteError, match="No space left on device"):
        index.save()
    monkeypatch.setattr(np, "save", original)
    assert not list(index.path.glob(".gen-*"))  # no half-written generation left behind
    reopened = Index.open(index.path, encoder=default_encoder, view=True)
    assert len(reopened) == 150
    index.save()  # the changes were kept: with space again, the same save succeeds
    assert len(Index.open(index.path, encoder=default_encoder)) == 151


def test_queries_get_the_query_prefix(tmp_path, prefixed_encoder):
    encoder = prefixed_encoder
    index = Index.create(tmp_path / "prefixed-index", encoder)
    index.add(["cats purr when they are content", "the stock market fell today"])
    hits = index.search("cats", k=2, mode="dense", rescore=1)
    prefixed = encoder.encode("query: cats")  # what the query must have been encoded as
    expected = C.int8_scores(prefixed, index._int8, index.ranges)
    assert [h.score for h in hits] == pytest.approx(sorted(expected, reverse=True), abs=1e-5)
    plain = C.int8_scores(encoder.encode("cats"), index._int8, index.ranges)
    assert not np.allclose(sorted(plain, reverse=True), [h.score for h in hits], atol=1e-3)


def test_lone_surrogates_are_stored_as_replacement_characters(tmp_path, default_encoder):
    index = Index.create(tmp_path / "surrogates", default_encoder)
    index.add(["broken \ud800 text", "fine text"], ids=["bad", "good"])
    index.save()
    texts = {hit.id: hit.text for hit in index.search("broken text", k=2)}
    assert texts["bad"] == "broken \ufffd text"


def test_add_and_search_take_a_str_or_a_sequence_of_str(tmp_path, default_encoder):
    index = Index.create(tmp_path / "inputs", default_encoder)
    assert index.add("one text") == [0]
    assert index.add(("a tuple", "of texts")) == [1, 2]
    assert index.add(text for text in ["from a generator"]) == [3]
    single = index.search("one text", k=2)
    assert isinstance(single[0], Hit) and single[0].id == 0
    batch = index.search(("one text", "a tuple"), k=1)
    assert [row[0].id for row in batch] == [0, 1]
    for bad in (b"bytes", None, 42, ["ok", 7]):
        with pytest.raises(TypeError):
            index.search(bad)
        with pytest.raises(TypeError):
            index.add(bad)
    with pytest.raises(TypeError, match="single string"):
        index.add(["x"], ids="x")
    with pytest.raises(TypeError, match="sequence of dicts"):
        index.add(["x"], metadata={"a": 1})
    assert len(index) == 4
