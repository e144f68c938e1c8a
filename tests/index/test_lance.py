"""Export to LanceDB, run here as the real embedded engine (its Rust core reading and
writing Lance files on disk): the engine's Hamming candidates with edgembed's refinement
and rescoring give the edgembed index's results."""

from __future__ import annotations

import json

import pytest

from conftest import assert_one_line_error, edgembed
from edgembed import Index
from edgembed.errors import EdgembedError
from edgembed.index.shards import build_shards

pytest.importorskip("lancedb")
from edgembed.index.lance import LanceIndex, export_index, parse_uri  # noqa: E402

N = 600


@pytest.fixture(scope="module")
def index(tmp_path_factory, default_encoder, sentences):
    texts = [f"{sentences[i % len(sentences)]} #{i}" for i in range(N)]
    built = Index.create(tmp_path_factory.mktemp("lance") / "index", default_encoder)
    built.add(texts, ids=[f"p{i}" for i in range(N)], metadata=[{"n": i} for i in range(N)])
    built.save()
    return built


@pytest.fixture(scope="module")
def queries(default_encoder, sentences):
    return default_encoder.encode(sentences[5:17], kind="query")


def hits_of(rows):
    return [[(h.id, round(h.score, 6), h.text, h.metadata) for h in row] for row in rows]


@pytest.mark.parametrize("k,rescore", [(1, 4), (10, 0), (10, 4), (30, 2)])
def test_engine_round_trip_equals_the_index(tmp_path, index, queries, default_encoder, k,
                                            rescore):
    result = export_index(index.path, f"lancedb:{tmp_path / 'db'}", show_progress=False)
    assert result["rows"] == N
    table = LanceIndex(f"lancedb:{tmp_path / 'db'}", default_encoder)
    assert len(table) == N
    assert hits_of(table.search_vectors(queries, k, rescore=rescore)) == \
        hits_of(index.search_vectors(queries, k, rescore=rescore))


def test_export_from_shards_and_parquet(tmp_path, index, queries, default_encoder):
    pytest.importorskip("pyarrow")
    from edgembed.distributed.parquet import ModelInfo, vectors_table, write_atomic

    docs = index.store.fetch(index._keys.tolist())
    model = ModelInfo(default_encoder.package.package_id, default_encoder.dim,
                      default_encoder.int8_ranges.to_json(), str(default_encoder.path))
    texts = [docs[int(k)][1] for k in index._keys]
    vectors = default_encoder.encode(texts)
    (tmp_path / "parquet").mkdir()
    for number, start in enumerate(range(0, N, 250)):
        end = min(N, start + 250)
        write_atomic(vectors_table([f"p{i}" for i in range(start, end)], vectors[start:end],
                                   model, ("int8", "ubinary"), texts[start:end],
                                   [{"n": i} for i in range(start, end)]),
                     tmp_path / "parquet" / f"part-{number:05d}.parquet")
    build_shards(tmp_path / "parquet", tmp_path / "shards", rows_per_shard=300)
    expected = hits_of(index.search_vectors(queries, 10))
    for source, name in ((tmp_path / "shards", "shards"), (tmp_path / "parquet", "parquet")):
        export_index(source, f"lancedb:{tmp_path / 'db'}?table={name}", show_progress=False)
        table = LanceIndex(f"lancedb:{tmp_path / 'db'}?table={name}", default_encoder)
        assert hits_of(table.search_vectors(queries, 10)) == expected, name


def test_refusals(tmp_path, index, default_encoder):
    pytest.importorskip("pyarrow")
    from edgembed.distributed.parquet import ModelInfo, vectors_table, write_atomic

    uri = f"lancedb:{tmp_path / 'db'}"
    export_index(index.path, uri, show_progress=False)
    with pytest.raises(EdgembedError, match="exists"):
        export_index(index.path, uri, show_progress=False)
    assert export_index(index.path, uri, overwrite=True, show_progress=False)["rows"] == N
    other = ModelInfo("another-model@0", default_encoder.dim,
                      default_encoder.int8_ranges.to_json())
    (tmp_path / "other").mkdir()
    write_atomic(vectors_table(["x"], default_encoder.encode(["x"]), other, ("int8", "ubinary")),
                 tmp_path / "other" / "part-00000.parquet")
    export_index(tmp_path / "other", f"{uri}?table=other", show_progress=False)
    with pytest.raises(EdgembedError, match="another-model@0"):
        LanceIndex(f"{uri}?table=other", default_encoder)
    with pytest.raises(EdgembedError, match="no LanceDB table"):
        LanceIndex(f"{uri}?table=missing")
    with pytest.raises(EdgembedError, match="unsupported engine URI"):
        parse_uri("qdrant://localhost:6333")


def test_ivf_index(tmp_path, index, queries, default_encoder):
    uri = f"lancedb:{tmp_path / 'db'}"
    assert export_index(index.path, uri, ivf_partitions=4, show_progress=False)["rows"] == N
    table = LanceIndex(uri, default_encoder)
    exact = hits_of(index.search_vectors(queries, 10))
    approx = hits_of(table.search_vectors(queries, 10, nprobes=4))  # every partition: exact
    assert approx == exact


def test_cli_export_then_search(tmp_path, index):
    uri = f"lancedb:{tmp_path / 'db'}"
    result = edgembed("export-index", str(index.path), "--to", uri, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == N
    engine = edgembed("search", "a query about cells", "--index", uri, "--json")
    local = edgembed("search", "a query about cells", "--index", str(index.path), "--json",
                     "--mode", "dense")  # LanceDB tables are searched by embeddings only
    assert_one_line_error(edgembed("search", "cells", "--index", uri, "--mode", "keyword"),
                          "embeddings only")
    assert engine.returncode == local.returncode == 0, engine.stderr + local.stderr
    assert [(r["id"], r["score"]) for r in json.loads(engine.stdout)] == \
        [(r["id"], r["score"]) for r in json.loads(local.stdout)]
    assert_one_line_error(edgembed("export-index", str(index.path), "--to", uri), "exists")
    assert_one_line_error(edgembed("export-index", str(index.path), "--to", "milvus://x"),
                          "unsupported engine URI")
