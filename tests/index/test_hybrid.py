"""Hybrid, dense and keyword search: reciprocal-rank fusion, plain-word queries that FTS5
can never reject, the FTS5 syntax on request, filters, snippets, the keyword tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgembed import Index, QueryError
from edgembed.index import cascade, keyword

DOCS = {
    "router": "Restart the router when the wifi keeps dropping.",
    "bread": "Feed a sourdough starter flour and water every day.",
    "burn": "Cool a burn under running water for twenty minutes.",
    "printer": "The printer shows error QX7741 when its paper tray is empty.",
    "laptop": "A laptop that shows an error at start-up may need its battery reset.",
    "tax": "Tax returns are due at the end of April.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, default_encoder):
    path = tmp_path_factory.mktemp("hybrid") / "index"
    with Index.create(path, default_encoder) as created:
        created.add(list(DOCS.values()), ids=list(DOCS))
    opened = Index.open(path, encoder=default_encoder, view=True)
    yield opened
    opened.close()


def test_fuse_rewards_agreement_and_breaks_ties_by_key():
    keys, scores = cascade.fuse([np.array([5, 7, 9]), np.array([7, 3])], 10, constant=1)
    # 7: 1/3 + 1/2; 5: 1/2; 3: 1/3; 9: 1/4 (5 and 3... by score, then by key)
    assert keys.tolist() == [7, 5, 3, 9]
    assert scores.tolist() == pytest.approx([1 / 3 + 1 / 2, 1 / 2, 1 / 3, 1 / 4])
    tied, _ = cascade.fuse([np.array([8]), np.array([2])], 2, constant=1)
    assert tied.tolist() == [2, 8]  # same score: the smaller key first, whatever the order
    assert cascade.fuse([np.array([2]), np.array([8])], 2, constant=1)[0].tolist() == [2, 8]
    assert cascade.fuse([np.array([1, 2, 3])], 2)[0].tolist() == [1, 2]
    assert len(cascade.fuse([np.array([], np.uint64)], 5)[0]) == 0


def test_a_rare_code_is_found_by_keywords_and_by_hybrid(index):
    keyword_hits = index.search("QX7741", k=3, mode="keyword")
    assert [hit.id for hit in keyword_hits] == ["printer"]
    assert index.search("QX7741", k=3)[0].id == "printer"  # hybrid: the default
    dense = index.search("QX7741", k=6, mode="dense")
    assert {hit.id for hit in dense} == set(DOCS)  # dense ranks everything, by meaning


def test_modes_rank_the_same_documents_as_rank(index):
    for mode in ("hybrid", "dense", "keyword"):
        hits = index.search("water every day", k=4, mode=mode)
        keys, _ = index.rank(["water every day"], k=4, mode=mode)[0]
        docs = index.store.fetch(keys.tolist())
        assert [hit.id for hit in hits] == [docs[int(key)][0] for key in keys]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from('ab "*-^:()+AND OR NOT NEAR\'{}.,é中\x00\\'),
               max_size=40))
def test_plain_queries_never_raise_fts5_syntax_errors(index, text):
    hits = index.search(text, k=3, mode="keyword")
    assert len(hits) <= 3
    assert len(index.rank([text], k=3, mode="hybrid")[0][0]) == 3


def test_fts5_syntax_on_request(index):
    assert [h.id for h in index.search('"paper tray"', k=3, mode="keyword",
                                       keyword_syntax=True)] == ["printer"]
    assert index.search('"tray paper"', k=3, mode="keyword", keyword_syntax=True) == []
    hits = index.search("error NOT laptop", k=3, mode="keyword", keyword_syntax=True)
    assert [h.id for h in hits] == ["printer"]
    assert [h.id for h in index.search("sourd*", k=3, mode="keyword",
                                       keyword_syntax=True)] == ["bread"]
    with pytest.raises(QueryError, match="invalid keyword query"):
        index.search('error AND (', k=3, mode="keyword", keyword_syntax=True)
    # as plain words the same text is just words
    words = {h.id for h in index.search("error AND (", k=6, mode="keyword")}
    assert words == {"printer", "laptop", "bread"}  # "error" or "and"


def test_snippets_alternate_plain_and_matched_segments(index):
    hit = index.search("paper tray", k=1, snippets=True)[0]
    assert hit.id == "printer"
    assert "".join(hit.snippet) == hit.text
    assert [s.lower() for s in hit.snippet[1::2]] == ["paper", "tray"]
    dense_only = index.search("QX7741", k=6, mode="dense", snippets=True)
    no_match = next(h for h in dense_only if h.id == "tax")
    assert no_match.snippet == (no_match.text,)  # no keyword match: the text's beginning


def test_search_mode_and_options_are_checked(index):
    with pytest.raises(Exception, match="search mode must be one of hybrid, dense, keyword"):
        index.search("x", mode="fuzzy")
    with pytest.raises(Exception, match="k must be a positive integer"):
        index.search("x", k=0, mode="keyword")


def test_keyword_table_follows_adds_removes_and_dropped_changes(tmp_path, default_encoder):
    index = Index.create(tmp_path / "index", default_encoder)
    index.add(["alpha bravo", "charlie delta"], ids=["a", "c"])
    assert [h.id for h in index.search("bravo", mode="keyword")] == ["a"]  # unsaved: seen
    index.save()
    index.remove("a")
    index.add(["bravo again"], ids=["b"])
    index.close()  # not saved: dropped
    reopened = Index.open(tmp_path / "index", encoder=default_encoder)
    assert [h.id for h in reopened.search("bravo", mode="keyword")] == ["a"]
    reopened.remove("a")
    reopened.save()
    assert reopened.search("bravo", mode="keyword") == []
    assert [h.id for h in reopened.search("delta", mode="keyword")] == ["c"]
    reopened.close()


def test_common_words_are_left_out_of_large_indexes(tmp_path, default_encoder, monkeypatch):
    monkeypatch.setattr(keyword, "COMMON_TERM_DOCS", 2)
    texts = [f"common word number {i}" for i in range(20)] + ["common rare"]
    index = Index.create(tmp_path / "index", default_encoder)
    index.add_vectors(np.ones((21, index.dim), np.float32), texts=texts)
    expression = index.store.keyword_expression(["common", "rare"], index.keyword_tokenizer,
                                                len(index), 0.2)
    assert expression == '"rare"'
    only_common = index.store.keyword_expression(["common"], index.keyword_tokenizer,
                                                 len(index), 0.2)
    assert only_common == '"common"'  # never left with no word at all
    index.close()


def test_default_tokenizer_follows_the_model(default_encoder):
    assert keyword.default_tokenizer(default_encoder.tokenizer.get_vocab()) == "english"
    multilingual = ["▁the", "▁und", "▁的", "▁и", "▁का", "▁le"] + [f"▁{chr(0x4e00 + i)}"
                                                              for i in range(10)]
    assert keyword.default_tokenizer(multilingual) == "unicode"


def test_tokenizer_is_chosen_per_index_and_checked(tmp_path, default_encoder):
    stemmed = Index.create(tmp_path / "english", default_encoder, keyword_tokenizer="english")
    plain = Index.create(tmp_path / "unicode", default_encoder, keyword_tokenizer="unicode")
    for index in (stemmed, plain):
        index.add(["The ducks were swimming", "Café crème"], ids=["ducks", "cafe"])
    assert [h.id for h in stemmed.search("duck swim", mode="keyword")] == ["ducks"]
    assert plain.search("duck swim", mode="keyword") == []  # no stemming: other words
    assert [h.id for h in plain.search("cafe creme", mode="keyword")] == ["cafe"]
    with pytest.raises(Exception, match="invalid keyword tokenizer"):
        Index.create(tmp_path / "bad", default_encoder, keyword_tokenizer="klingon")
    assert not (tmp_path / "bad" / "index.json").exists()
