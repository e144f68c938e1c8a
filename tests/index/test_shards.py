"""Several shards searched as one give the single index's results (ids, order, scores) in
every search mode (dense, keyword, hybrid; any rescoring), and `edgembed shards` builds them
from the Parquet files of `edgembed embed --ray`.

Scores are compared exactly, not within a tolerance: the dense side runs the same cascade
functions on the same arrays, the keyword side computes BM25 with FTS5's own operations in
its order (`edgembed.index.bm25`), and fusion only counts ranks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, edgembed
from edgembed import Index
from edgembed.errors import EdgembedError, IndexFileError
from edgembed.index import bm25, keyword
from edgembed.index.shards import ShardedIndex, build_shards, has_texts

pytest.importorskip("pyarrow")
from edgembed.distributed.parquet import ModelInfo, vectors_table, write_atomic  # noqa: E402

N = 900
MODES = ("dense", "keyword", "hybrid")
RARE = "quokka"  # only in documents 465 and 470: in the last shard of `shards`


@pytest.fixture(scope="module")
def corpus(sentences):
    """Texts with exact duplicates in different shards: tied codes and scores across shards
    (dense and BM25)."""
    texts = [f"{sentences[i % len(sentences)]} ({i % 311})" for i in range(N)]
    texts[700] = texts[5]
    texts[450] = texts[6]
    texts[465] += f" A {RARE} was seen."
    texts[470] += f" {RARE.title()}s and a {RARE}."
    return texts


@pytest.fixture(scope="module")
def text_queries(sentences):
    """Sentences of the corpus, the rare word alone and with common ones, a number (a term
    in a few documents of several shards), and queries with no words at all."""
    return [*sentences[:10], RARE, f"{RARE} birds home", f"{RARE.title()}s and a {RARE}",
            "(17) (200)", "", "   ", "?!"]


@pytest.fixture(scope="module")
def vectors(default_encoder, corpus):
    return default_encoder.encode(corpus)


@pytest.fixture(scope="module")
def queries(default_encoder, sentences):
    return default_encoder.encode(sentences[:12], kind="query")


@pytest.fixture(scope="module")
def single(tmp_path_factory, default_encoder, corpus, vectors):
    index = Index.create(tmp_path_factory.mktemp("single") / "index", default_encoder)
    index.add_vectors(vectors, texts=corpus, ids=[f"d{i}" for i in range(N)],
                      metadata=[{"n": i} for i in range(N)])
    index.save()
    return index


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, default_encoder, corpus, vectors):
    """Parts as `edgembed embed --ray` writes them (4 files, uneven sizes)."""
    folder = tmp_path_factory.mktemp("parquet")
    model = ModelInfo(default_encoder.package.package_id, default_encoder.dim,
                      default_encoder.int8_ranges.to_json(), str(default_encoder.path))
    for number, (start, end) in enumerate([(0, 100), (100, 450), (450, 460), (460, N)]):
        table = vectors_table([f"d{i}" for i in range(start, end)], vectors[start:end], model,
                              ("float32", "int8", "ubinary"), corpus[start:end],
                              [{"n": i} for i in range(start, end)])
        write_atomic(table, folder / f"part-{number:05d}.parquet")
    return folder


def same_hits(a, b):
    assert [[h.id for h in row] for row in a] == [[h.id for h in row] for row in b]
    assert [[h.score for h in row] for row in a] == [[h.score for h in row] for row in b]
    assert [[(h.text, h.metadata) for h in row] for row in a] == \
        [[(h.text, h.metadata) for h in row] for row in b]


@pytest.mark.parametrize("k,rescore", [(1, 4), (10, 0), (10, 1), (10, 4), (50, 8)])
def test_shards_search_as_the_single_index(tmp_path, parquet_dir, single, queries, k, rescore):
    paths = build_shards(parquet_dir, tmp_path / "shards", rows_per_shard=300)
    assert [len(Index.open(p, view=True)) for p in paths] == [100, 350, 10, 440]  # by file
    with ShardedIndex.open(tmp_path / "shards") as sharded:
        assert len(sharded) == N
        same_hits(sharded.search_vectors(queries, k, rescore=rescore),
                  single.search_vectors(queries, k, rescore=rescore))


@pytest.fixture(scope="module")
def shards(tmp_path_factory, parquet_dir):
    """Four shards, by file: 100, 350, 10 and 440 documents (the 10 hold no rare word)."""
    root = tmp_path_factory.mktemp("shards") / "shards"
    build_shards(parquet_dir, root, rows_per_shard=300)
    with ShardedIndex.open(root) as sharded:
        yield sharded


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("k,rescore", [(1, 4), (10, 0), (10, 1), (10, 4), (50, 8)])
def test_every_mode_as_the_single_index(shards, single, text_queries, mode, k, rescore):
    same_hits(shards.search(text_queries, k, mode=mode, rescore=rescore),
              single.search(text_queries, k, mode=mode, rescore=rescore))


def test_keyword_statistics_are_those_of_all_shards(shards, single):
    """A word in one shard only: the other shards have no keyword hits, and its BM25 there
    differs from one index's (document count, average length, IDF), yet the sharded search
    scores it as one index does."""
    expected = single.search(RARE, k=5, mode="keyword")
    assert [hit.id for hit in expected] == ["d470", "d465"]  # "Quokkas" is stemmed
    last = shards.shards[3]
    assert [len(s.search(RARE, k=5, mode="keyword")) for s in shards.shards] == [0, 0, 0, 2]
    assert last.search(RARE, k=5, mode="keyword")[0].score != expected[0].score
    same_hits([shards.search(RARE, k=5, mode="keyword")], [expected])
    same_hits([shards.search(f"{RARE} birds", k=20, mode=mode) for mode in MODES],
              [single.search(f"{RARE} birds", k=20, mode=mode) for mode in MODES])


def test_no_words_no_keyword_hits(shards, single):
    for query in ("", "  ", "?!"):
        assert shards.search(query, k=5, mode="keyword") == [] == \
            single.search(query, k=5, mode="keyword")
        same_hits([shards.search(query, k=5)], [single.search(query, k=5)])  # dense, fused


def test_bad_arguments_are_refused_as_by_an_index(shards):
    with pytest.raises(EdgembedError, match="search mode must be one of"):
        shards.search("birds", mode="bm25")
    with pytest.raises(EdgembedError, match="k must be a positive integer"):
        shards.search("birds", k=0, mode="keyword")
    with pytest.raises(EdgembedError, match="mode='exact'"):
        shards.search("birds", exact=False)
    with pytest.raises(EdgembedError, match="2 query vectors for 1 queries"):
        shards.search(["birds"], vectors=np.ones((2, shards.dim), np.float32))


def test_common_words_are_left_out_by_counts_over_all_shards(shards, single, text_queries,
                                                             monkeypatch):
    """With the threshold lowered, words in over 20% of all documents leave keyword
    queries; which ones follows the counts of all shards together, as in one index."""
    before = single.search(text_queries, 10, mode="keyword")
    monkeypatch.setattr(keyword, "COMMON_TERM_DOCS", 10)
    after = single.search(text_queries, 10, mode="keyword")
    assert [[h.score for h in row] for row in after] != \
        [[h.score for h in row] for row in before]  # some words were left out
    for mode in ("keyword", "hybrid"):
        same_hits(shards.search(text_queries, 10, mode=mode),
                  single.search(text_queries, 10, mode=mode))


@pytest.mark.parametrize("tokenizer", ["unicode", "trigram"])
def test_other_keyword_tokenizers(tmp_path, default_encoder, corpus, vectors, text_queries,
                                  tokenizer):
    """Words that are several terms (trigrams) or none (shorter than a trigram): the
    phrases are FTS5's, whatever the tokenizer makes of them."""
    def index(path, rows):
        created = Index.create(path, default_encoder, keyword_tokenizer=tokenizer)
        created.add_vectors(vectors[rows], texts=corpus[rows],
                            ids=[f"d{i}" for i in range(N)][rows])
        created.save()
        return created

    one = index(tmp_path / "one", slice(400, 700))
    shards = [index(tmp_path / f"s{n}", slice(start, start + 100))
              for n, start in enumerate((400, 500, 600))]
    queries = [*text_queries, "ab cd", "ion"]
    with ShardedIndex(shards) as sharded:
        for mode in ("keyword", "hybrid"):
            same_hits(sharded.search(queries, 10, mode=mode), one.search(queries, 10, mode=mode))
    one.close()


def test_a_shard_saved_meanwhile_is_searched_in_its_new_state(tmp_path, default_encoder,
                                                              corpus, vectors, text_queries):
    """Another writer saves a shard after the shards were opened: every mode sees the new
    documents in BM25's statistics as in the dense cascade, as one index holding them."""
    def fill(index, rows):
        index.add_vectors(vectors[rows], texts=corpus[rows], ids=[f"d{i}" for i in range(N)][rows])
        index.save()

    for number, rows in enumerate((slice(0, 100), slice(100, 200))):
        with Index.create(tmp_path / f"s{number}", default_encoder) as shard:
            fill(shard, rows)
    sharded = ShardedIndex([Index.open(tmp_path / f"s{n}", view=True) for n in range(2)])
    sharded.search(text_queries, 10, mode="hybrid")  # statistics of 200 documents read
    with Index.open(tmp_path / "s0", encoder=default_encoder) as writer:
        fill(writer, slice(450, 480))  # holds the rare word
    one = Index.create(tmp_path / "one", default_encoder)
    for rows in (slice(0, 100), slice(450, 480), slice(100, 200)):
        fill(one, rows)
    for mode in MODES:
        same_hits(sharded.search(text_queries, 10, mode=mode),
                  one.search(text_queries, 10, mode=mode))
    sharded.close()
    one.close()


def test_varint_is_sqlites():
    assert bm25.varint(bytes([0x05])) == (5, 1)
    assert bm25.varint(bytes([0x81, 0x00, 0x07])) == (128, 2)
    assert bm25.varint(bytes([0x81, 0x80, 0x00]), 0) == (1 << 14, 3)
    assert bm25.varint(bytes([0xFF] * 9)) == ((1 << 64) - 1, 9)


def test_shards_without_texts_search_densely_only(tmp_path, default_encoder, vectors, single,
                                                  queries):
    """Parquet files of `embed --no-text`: the shards say so, keyword and hybrid search are
    refused with a message naming the way out, dense search is one index's."""
    folder = tmp_path / "parquet"
    folder.mkdir()
    model = ModelInfo(default_encoder.package.package_id, default_encoder.dim,
                      default_encoder.int8_ranges.to_json(), str(default_encoder.path))
    for number, start in enumerate(range(0, N, 450)):
        write_atomic(vectors_table([f"d{i}" for i in range(start, start + 450)],
                                   vectors[start:start + 450], model, ("int8", "ubinary")),
                     folder / f"part-{number:05d}.parquet")
    result = edgembed("shards", str(folder), "--out", str(tmp_path / "shards"))
    assert result.returncode == 0, result.stderr
    assert "no text column" in result.stderr and "--mode dense" in result.stderr
    assert not has_texts(tmp_path / "shards")
    with ShardedIndex.open(tmp_path / "shards") as sharded:
        for mode in ("hybrid", "keyword"):
            with pytest.raises(EdgembedError, match="no texts.*mode='dense'"):
                sharded.search("birds", k=3, mode=mode)
        assert [[h.id for h in row] for row in sharded.search_vectors(queries, 5)] == \
            [[h.id for h in row] for row in single.search_vectors(queries, 5)]
    dense = edgembed("search", "birds", "--index", str(tmp_path / "shards"), "--json")
    assert dense.returncode == 0, dense.stderr  # no --mode: dense, as these shards can
    assert [row["text"] for row in json.loads(dense.stdout)] == [None] * 10
    assert_one_line_error(edgembed("search", "birds", "--index", str(tmp_path / "shards"),
                                   "--mode", "keyword"), "no texts", "--mode dense")


def test_shards_of_other_keyword_tokenizers_are_refused(tmp_path, default_encoder):
    one = Index.create(tmp_path / "a", default_encoder, keyword_tokenizer="english")
    other = Index.create(tmp_path / "b", default_encoder, keyword_tokenizer="trigram")
    with pytest.raises(EdgembedError, match="tokenizer"):
        ShardedIndex([one, other])
    one.close()
    other.close()


def test_text_search_and_shards_from_float32_only(tmp_path, default_encoder, corpus, vectors,
                                                  single, sentences):
    folder = tmp_path / "parquet"
    folder.mkdir()
    model = ModelInfo(default_encoder.package.package_id, default_encoder.dim,
                      default_encoder.int8_ranges.to_json())
    for number, start in enumerate(range(0, N, 400)):
        end = min(N, start + 400)
        write_atomic(vectors_table([f"d{i}" for i in range(start, end)], vectors[start:end],
                                   model, ("float32",), corpus[start:end],
                                   [{"n": i} for i in range(start, end)]),
                     folder / f"part-{number:05d}.parquet")
    build_shards(folder, tmp_path / "shards", encoder=default_encoder, rows_per_shard=500)
    assert has_texts(tmp_path / "shards")
    with ShardedIndex.open(tmp_path / "shards") as sharded:
        assert len(sharded.shards) == 2  # 400 | 400 + 100
        for mode in MODES:
            same_hits([sharded.search(sentences[3], k=5, mode=mode)],
                      [single.search(sentences[3], k=5, mode=mode)])


def test_build_refuses_what_it_cannot_use(tmp_path, parquet_dir):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("taken")
    with pytest.raises(EdgembedError, match="not empty"):
        build_shards(parquet_dir, tmp_path / "full")
    with pytest.raises(EdgembedError, match="part-"):
        build_shards(tmp_path / "full", tmp_path / "new")
    with pytest.raises(EdgembedError, match="rows per shard"):
        build_shards(parquet_dir, tmp_path / "new", rows_per_shard=0)


def test_damaged_shards_file(tmp_path, parquet_dir):
    build_shards(parquet_dir, tmp_path / "shards")
    (tmp_path / "shards" / "shards.json").write_text(json.dumps(
        {"format": "edgembed-shards", "shards": ["../elsewhere"]}))
    with pytest.raises(IndexFileError, match="unreadable"):
        ShardedIndex.open(tmp_path / "shards")
    assert_one_line_error(edgembed("search", "cells", "--index", str(tmp_path / "shards")),
                          "shards.json")


def test_cli_shards_then_search(tmp_path, parquet_dir, single):
    result = edgembed("shards", str(parquet_dir), "--out", str(tmp_path / "shards"),
                      "--rows-per-shard", "400")
    assert result.returncode == 0, result.stderr
    for mode in ([], ["--mode", "keyword"]):  # hybrid by default, as an index
        sharded = edgembed("search", "migratory birds", "--index", str(tmp_path / "shards"),
                           "--json", "-k", "7", *mode)
        one = edgembed("search", "migratory birds", "--index", str(single.path), "--json",
                       "-k", "7", *mode)
        assert sharded.returncode == one.returncode == 0, sharded.stderr + one.stderr
        assert json.loads(sharded.stdout) == json.loads(one.stdout) != []
    assert_one_line_error(edgembed("search", "birds", "--index", str(tmp_path / "shards"),
                                   "--keyword-syntax"), "sharded index", "--keyword-syntax")


def test_the_pool_is_cut_across_shards_as_one_index_cuts_it(tmp_path, default_encoder):
    """A document beyond the global Hamming pool that wins on the asymmetric score: one
    index never sees it, so neither may the shards, although it is in its shard's pool.
    The query is large on 192 dimensions and tiny on the others; the near documents agree
    on the tiny signs and differ on 20 large ones, the far one the other way round."""
    rng = np.random.default_rng(0)
    dim = default_encoder.dim
    query = np.where(np.arange(dim) < dim // 2, 1.0, 0.001) * rng.choice([-1.0, 1.0], dim)
    near = np.repeat(query[None], 10, axis=0)
    for row in near:
        row[rng.choice(dim // 2, 20, replace=False)] *= -1  # Hamming 20, asymmetric 152
    far = query.copy()
    far[dim // 2:] *= -1  # Hamming 192, asymmetric ~192: the best by the second stage
    others = -np.repeat(query[None], 9, axis=0)  # Hamming 384
    shard_vectors = [near, np.concatenate([far[None], others])]
    shards, start = [], 0
    for number, part in enumerate(shard_vectors):
        shard = Index.create(tmp_path / f"s{number}", default_encoder)
        shard.add_vectors(part.astype(np.float32), ids=list(range(start, start + len(part))))
        shard.save()
        shards.append(shard)
        start += len(part)
    one = Index.create(tmp_path / "one", default_encoder)
    one.add_vectors(np.concatenate(shard_vectors).astype(np.float32), ids=list(range(start)))
    one.save()
    expected = one.search_vectors(query.astype(np.float32), k=1, rescore=0)
    assert expected[0][0].id != 10  # the far document is not found by one index
    same_hits(ShardedIndex(shards).search_vectors(query.astype(np.float32), k=1, rescore=0),
              expected)
