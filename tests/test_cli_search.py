"""`edgembed index`, `search` and `eval` end to end, plus the passage chunker."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgembed.index.ingest import Chunker
from edgembed.package import default_package_path

SAMPLES = default_package_path().parent / "samples"


def edgembed(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgembed", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd)


@pytest.fixture
def folder(tmp_path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(SAMPLES, target)
    return target


def summary(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stderr.strip().splitlines()[-1]


def test_index_is_incremental_and_search_finds_passages(folder, tmp_path):
    index = str(tmp_path / "index")
    first = summary(edgembed("index", str(folder), "--index", index))
    files = sum(1 for p in folder.rglob("*") if p.suffix in {".txt", ".md", ".jsonl"})
    assert f"{files} new, 0 changed, 0 unchanged, 0 removed" in first

    again = summary(edgembed("index", str(folder), "--index", index))
    assert f"0 new, 0 changed, {files} unchanged, 0 removed" in again and "+0 / -0" in again

    touched = folder / "water-cycle.txt"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    assert f"{files} unchanged" in summary(edgembed("index", str(folder), "--index", index))

    (folder / "houseplant-care.txt").write_text(
        "Zebra finches sing short, buzzy songs and live in noisy flocks.\n", encoding="utf-8")
    (folder / "bicycle-maintenance.txt").unlink()
    changed = summary(edgembed("index", str(folder), "--index", index))
    assert "0 new, 1 changed" in changed and "1 removed files" in changed

    result = edgembed("search", "songs of small finches", "--index", index, "-k", "3",
                      "--json")
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and hits[0]["file"].endswith("houseplant-care.txt")
    assert hits[0]["passage"] == 0 and "Zebra finches" in hits[0]["text"]
    assert all(not h["file"].endswith("bicycle-maintenance.txt") for h in hits)
    gone = json.loads(edgembed("search", "bicycle chain lubrication", "--index", index,
                               "-k", "10", "--json").stdout)
    assert all(not h["file"].endswith("bicycle-maintenance.txt") for h in gone)

    text = edgembed("search", "bread starter", "--index", index, "-k", "2", "--rescore", "0")
    assert text.returncode == 0 and "sourdough-baking.md #" in text.stdout


def test_jsonl_records_are_indexed_with_metadata(tmp_path):
    data = tmp_path / "records.jsonl"
    data.write_text(json.dumps({"id": "r1", "title": "Tides", "text": "The moon pulls the "
                               "oceans and makes the tides rise and fall."}) + "\n"
                    + "not json\n" + json.dumps({"id": "r2", "text": "Volcanoes erupt."}) + "\n",
                    encoding="utf-8")
    index = str(tmp_path / "index")
    result = edgembed("index", str(data), "--index", index)
    assert result.returncode == 0 and "records.jsonl:2: not JSON" in result.stderr
    hits = json.loads(edgembed("search", "why do tides happen", "--index", index, "-k", "1",
                               "--json").stdout)
    assert hits[0]["metadata"]["record_id"] == "r1" and hits[0]["metadata"]["line"] == 1


def test_search_errors_are_one_line(tmp_path):
    missing = edgembed("search", "x", "--index", str(tmp_path / "nope"))
    assert missing.returncode == 2 and missing.stderr.startswith("edgembed: error:")
    assert "Traceback" not in missing.stderr
    not_beir = edgembed("eval", "--data", str(tmp_path))
    assert not_beir.returncode == 2 and "not a BEIR folder" in not_beir.stderr
    absent = edgembed("index", str(tmp_path / "absent"), "--index", str(tmp_path / "i"))
    assert absent.returncode == 2 and "no such file or folder" in absent.stderr


def test_chunker_passages_fit_and_overlap(default_encoder):
    chunker = Chunker(default_encoder.tokenizer, default_encoder.max_seq_length)
    text = (SAMPLES / "sourdough-baking.md").read_text(encoding="utf-8") * 3
    spans = chunker.passages(text)
    assert len(spans) > 3
    assert spans[0][0] == 0 and spans[-1][1] == len(text.rstrip())
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert next_start < end  # overlapping
    for start, end in spans:
        assert len(default_encoder.tokenizer.encode(text[start:end]).ids) <= \
            default_encoder.max_seq_length
    assert chunker.passages("") == [] and chunker.passages("short") == [(0, 5)]


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
