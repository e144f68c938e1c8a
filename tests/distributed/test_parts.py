"""Planning and reading the parts of `edgembed embed --ray` (no Ray needed): every row is
read exactly once whatever the part size, and bad rows are reported, never raised."""

from __future__ import annotations

import json

import pytest

from edgembed.distributed.inputs import Fields, plan_parts, read_part
from edgembed.errors import EdgembedError
from edgembed.index.ingest import Chunker

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def write_jsonl(path, records) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


def read_all(parts, fields=None, chunker=None):
    rows, bad = [], []
    for part in parts:
        found = read_part(part, fields or Fields(), chunker)
        rows += found.rows
        bad += found.bad
    return rows, bad


@pytest.mark.parametrize("part_bytes", [1, 7, 100, 1000, 1 << 20])
def test_jsonl_parts_read_every_line_once(tmp_path, part_bytes):
    records = [{"id": f"d{i}", "text": "é" * (i % 13) + f" text {i}", "n": i} for i in range(150)]
    write_jsonl(tmp_path / "a.jsonl", records)
    parts = plan_parts([tmp_path / "a.jsonl"], part_bytes)
    rows, bad = read_all(parts)
    assert not bad
    assert [row.id for row in rows] == [r["id"] for r in records]
    assert rows[3].text == records[3]["text"].strip() and rows[3].metadata == {"n": 3}
    assert plan_parts([tmp_path / "a.jsonl"], part_bytes) == parts  # deterministic


def test_bad_rows_are_reported_not_raised(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [
        {"id": "ok", "text": "fine"},
        {"id": "int", "text": 5},
        {"id": "null", "text": None},
        {"id": "list", "text": ["a"]},
        {"id": "empty", "text": ""},
        {"id": "blank", "text": " \n\t"},
        {"id": "huge", "text": "x" * 5000},
        {"id": ["bad id"], "text": "t"},
        "not json {",
        "[1, 2]",
        {"text": "no id: the position is the id"},
    ])
    rows, bad = read_all(plan_parts([tmp_path / "a.jsonl"]), Fields(max_chars=4000))
    assert [row.id for row in rows] == ["ok", rows[1].id]
    assert rows[1].id.startswith("a.jsonl@")
    reasons = {row.id: row.reason for row in bad}
    assert "is int" in reasons["int"] and "missing or null" in reasons["null"]
    assert "is list" in reasons["list"]
    assert reasons["empty"] == reasons["blank"] == "empty text"
    assert reasons["huge"].startswith("huge text: 5,000 characters")
    assert len(bad) == 9 and all(row.where.startswith("a.jsonl@") for row in bad)
    assert sum("not JSON" in row.reason for row in bad) == 1
    assert sum("not an object" in row.reason for row in bad) == 1


def test_text_fields_are_joined_as_beir_does(tmp_path):
    write_jsonl(tmp_path / "c.jsonl", [{"_id": "1", "title": "Title", "text": "Body."},
                                       {"_id": "2", "title": "", "text": "Only body."}])
    fields = Fields(id_field="_id", text_fields=("title", "text"))
    rows, _ = read_all(plan_parts([tmp_path / "c.jsonl"]), fields)
    assert [row.text for row in rows] == ["Title Body.", "Only body."]


def test_parquet_slices_read_every_row_once(tmp_path):
    table = pa.table({"id": [f"p{i}" for i in range(1000)],
                      "text": [None if i == 7 else f"row {i}" for i in range(1000)],
                      "lang": ["en"] * 1000})
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=300)
    parts = plan_parts([tmp_path / "in.parquet"], part_bytes=2000)
    assert len(parts) > 4 and {p.row_group for p in parts} == {0, 1, 2, 3}
    rows, bad = read_all(parts)
    assert [row.id for row in rows] == [f"p{i}" for i in range(1000) if i != 7]
    assert [row.id for row in bad] == ["p7"] and rows[0].metadata == {"lang": "en"}


def test_documents_are_cut_as_edgembed_index_cuts_them(tmp_path, default_encoder):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "long.md").write_text("A sentence about cells. " * 400, encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / ".hidden.txt").write_text("never read", encoding="utf-8")
    chunker = Chunker(default_encoder.tokenizer, default_encoder.max_seq_length)
    rows, bad = read_all(plan_parts([folder]), chunker=chunker)
    spans = chunker.passages("A sentence about cells. " * 400)
    assert len(rows) == len(spans) > 1
    assert rows[0].id.endswith("long.md#0") and rows[0].metadata["passage"] == 0
    assert [row.reason for row in bad] == ["empty text"]


def test_unknown_inputs_are_refused(tmp_path):
    (tmp_path / "a.csv").write_text("x", encoding="utf-8")
    with pytest.raises(EdgembedError, match="cannot read .csv"):
        plan_parts([tmp_path / "a.csv"])
    with pytest.raises(EdgembedError, match="no such file"):
        plan_parts([tmp_path / "missing.jsonl"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(EdgembedError, match="no .jsonl"):
        plan_parts([tmp_path / "empty"])
