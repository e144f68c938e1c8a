"""Several shards searched as one give the single index's results (ids, order, scores),
and `edgembed shards` builds them from the Parquet files of `edgembed embed --ray`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import assert_one_line_error, edgembed
from edgembed import Index
from edgembed.errors import EdgembedError, IndexFileError
from edgembed.index.shards import ShardedIndex, build_shards

pytest.importorskip("pyarrow")
from edgembed.distributed.parquet import ModelInfo, vectors_table, write_atomic  # noqa: E402

N = 900


@pytest.fixture(scope="module")
def corpus(sentences):
    """Texts with exact duplicates in different shards: tied codes and scores across shards."""
    texts = [f"{sentences[i % len(sentences)]} ({i % 311})" for i in range(N)]
    texts[700] = texts[5]
    texts[450] = texts[6]
    return texts


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
    with ShardedIndex.open(tmp_path / "shards") as sharded:
        assert len(sharded.shards) == 2  # 400 | 400 + 100
        same_hits([sharded.search(sentences[3], k=5)],
                  [single.search(sentences[3], k=5, mode="dense")])


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
    sharded = edgembed("search", "protein folding", "--index", str(tmp_path / "shards"),
                       "--json", "-k", "7")
    one = edgembed("search", "protein folding", "--index", str(single.path), "--json", "-k", "7",
                   "--mode", "dense")
    assert sharded.returncode == one.returncode == 0, sharded.stderr + one.stderr
    assert json.loads(sharded.stdout) == json.loads(one.stdout)


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
