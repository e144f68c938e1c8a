"""`edgembed eval` end to end on a tiny BEIR folder: every scheme and target reported."""

from __future__ import annotations

import json

import pytest

from conftest import edgembed


def test_eval_on_a_tiny_beir_folder(tmp_path, sentences):
    data = tmp_path / "tiny"
    (data / "qrels").mkdir(parents=True)
    docs = sentences[:60]
    with open(data / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(docs):
            handle.write(json.dumps({"_id": f"d{i}", "title": "", "text": text}) + "\n")
    with open(data / "queries.jsonl", "w", encoding="utf-8") as handle:
        for i in range(8):
            handle.write(json.dumps({"_id": f"q{i}", "text": docs[i * 7]}) + "\n")
    (data / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i * 7}\t1\n" for i in range(8)))
    out = tmp_path / "report.json"
    result = edgembed("eval", "--data", str(data), "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert json.loads(result.stdout) == report
    names = [row["scheme"] for row in report["schemes"]]
    assert {"float32 exact", "int8", "binary (Hamming)", "binary asymmetric",
            "binary + int8 rescore=4"} <= set(names)
    exact = report["schemes"][names.index("float32 exact")]
    assert exact["ndcg@10"] == pytest.approx(1.0) and exact["latency_ms"]["median"] > 0
    assert set(report["targets"]) == {"best_code_le_2_bits_ndcg@10", "binary_rescore_4_ndcg@10",
                                      "first_stage_recall@100_vs_exact",
                                      "binary_rescore_4_latency_ms"}
