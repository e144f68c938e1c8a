"""The MTEB adapter against the real `mteb`, offline: a tiny BEIR folder the test writes,
scored by `mteb.evaluate` with nothing downloaded and no results cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

from edgembed.eval.beir import exact_search_quality, load_beir  # noqa: E402
from edgembed.integrations.mteb import EdgembedMTEBModel, beir_task  # noqa: E402

CORPUS = {
    "bread": ("Sourdough", "Feed a sourdough starter flour and water every day."),
    "bake": ("Baking", "Bake the loaf in a hot oven with steam for a crisp crust."),
    "wifi": ("Networking", "Restart the router when the wifi keeps dropping."),
    "cable": ("Networking", "A loose ethernet cable makes the connection fail."),
    "burn": ("First aid", "Cool a burn under running water for twenty minutes."),
    "cat": ("Pets", "The cat sleeps on the warm laptop keyboard."),
    "tax": ("Money", "Tax returns are due at the end of April."),
    "plants": ("Garden", "Water houseplants when the top of the soil is dry."),
}
QUERIES = {"q1": ("how do I keep my bread starter alive", {"bread": 2, "bake": 1}),
           "q2": ("my internet connection keeps disconnecting", {"wifi": 2, "cable": 1}),
           "q3": ("what to do right after burning your hand", {"burn": 1}),
           "q4": ("when should I water indoor plants", {"plants": 1})}


@pytest.fixture(scope="module", autouse=True)
def offline():
    """Belt and braces: the Hub and datasets libraries stay offline during these tests."""
    saved = {name: os.environ.get(name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    os.environ.update({name: "1" for name in saved})
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def beir_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-beir")
    (root / "qrels").mkdir()
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as out:
        for doc_id, (title, text) in CORPUS.items():
            out.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with open(root / "queries.jsonl", "w", encoding="utf-8") as out:
        for query_id, (text, _) in QUERIES.items():
            out.write(json.dumps({"_id": query_id, "text": text}) + "\n")
        out.write(json.dumps({"_id": "unjudged", "text": "not in the qrels"}) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [
        f"{query_id}\t{doc_id}\t{grade}"
        for query_id, (_, judged) in QUERIES.items() for doc_id, grade in judged.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def run(model, beir_folder, tmp_path):
    predictions = tmp_path / "predictions"
    result = mteb.evaluate(model, beir_task(beir_folder, "TinyRetrieval"), cache=None,
                           prediction_folder=predictions, show_progress_bar=False)
    (task_result,) = result.task_results
    ranked = json.loads(next(predictions.glob("*.json")).read_text())
    return task_result.scores["test"][0], ranked


def test_mteb_scores_match_edgembed_vectors(prefixed_encoder, beir_folder, tmp_path):
    """Queries get the query prefix ("query: " in this package), documents none: MTEB's
    saved scores are exactly the cosines of what `Encoder.encode` gives each kind."""
    scores, predictions = run(EdgembedMTEBModel(encoder=prefixed_encoder), beir_folder,
                              tmp_path)
    data = load_beir(beir_folder)
    docs = prefixed_encoder.encode(data.doc_texts, kind="document")
    queries = prefixed_encoder.encode(data.query_texts, kind="query")
    unprefixed = prefixed_encoder.encode(data.query_texts, kind="document")
    expected = queries @ docs.T
    assert predictions["mteb_model_meta"]["model_name"] == "edgembed/all-minilm-l6-v2"
    for row, query_id in enumerate(data.query_ids):
        got = predictions["default"]["test"][query_id]
        for col, doc_id in enumerate(data.doc_ids):
            # float32 vectors, scored by MTEB in torch: the same cosine up to rounding
            assert got[doc_id] == pytest.approx(expected[row, col], abs=1e-5)
    # the prefix changes the scores, so the check above sees whether it was applied
    assert np.abs(unprefixed @ docs.T - expected).max() > 1e-3
    ours = exact_search_quality(data, docs, queries)
    assert scores["ndcg_at_10"] == pytest.approx(ours["ndcg@10"], abs=1e-4)
    assert scores["ndcg_at_10"] > 0.9, scores  # the topics are far apart
    assert scores["main_score"] == scores["ndcg_at_10"]


def test_model_meta_describes_the_package(default_encoder):
    meta = EdgembedMTEBModel(encoder=default_encoder).mteb_model_meta
    assert meta.name == "edgembed/all-minilm-l6-v2"
    assert meta.revision == default_encoder.package.package_id
    assert meta.embed_dim == 384 and meta.max_tokens == 256
    assert meta.adapted_from == "sentence-transformers/all-MiniLM-L6-v2"


def test_encode_handles_empty_and_refuses_non_str(default_encoder):
    model = EdgembedMTEBModel(encoder=default_encoder)
    task = beir_task(".").metadata
    empty = model.encode([], task_metadata=task, hf_split="test", hf_subset="default")
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError, match=r"texts\[1\] is NoneType, expected str"):
        model.encode([{"text": ["fine"]}, {"text": [None]}], task_metadata=task,
                     hf_split="test", hf_subset="default")


def test_bad_folder_and_bad_options_fail_clearly(default_encoder, tmp_path):
    from edgembed import EdgembedError

    with pytest.raises(EdgembedError, match="not a BEIR folder"):
        beir_task(tmp_path).load_data()
    with pytest.raises(EdgembedError, match="precision"):
        EdgembedMTEBModel(encoder=default_encoder, encode_kwargs={"precision": "int8"})
