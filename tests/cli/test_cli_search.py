"""`edgembed index` and `edgembed search` end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import assert_one_line_error, edgembed
from edgembed.index.formats import SUFFIXES
from edgembed.package import default_package_path

SAMPLES = default_package_path().parent / "samples"


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
    files = sum(1 for p in folder.rglob("*") if p.suffix in SUFFIXES)
    assert f"{files} new, 0 changed, 0 unchanged, 0 removed, 0 skipped" in first

    again = summary(edgembed("index", str(folder), "--index", index))
    assert f"0 new, 0 changed, {files} unchanged, 0 removed" in again and "+0 / -0" in again

    touched = folder / "water-cycle.txt"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    assert f"{files} unchanged" in summary(edgembed("index", str(folder), "--index", index))

    (folder / "houseplant-care.txt").write_text(
        "Zebra finches sing short, buzzy songs and live in noisy flocks.\n", encoding="utf-8")
    (folder / "bicycle-maintenance.txt").unlink()
    changed = summary(edgembed("index", str(folder), "--index", index))
    assert "0 new, 1 changed" in changed and "1 removed, 0 skipped files" in changed

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


def test_search_modes_and_keyword_syntax(folder, tmp_path):
    index = str(tmp_path / "index")
    summary(edgembed("index", str(folder / "notes"), str(folder / "sourdough-baking.md"),
                     "--index", index))
    for mode in ("hybrid", "dense", "keyword"):
        hits = json.loads(edgembed("search", "bread starter", "--index", index, "--mode",
                                   mode, "-k", "1", "--json").stdout)
        assert hits[0]["file"].endswith("sourdough-baking.md"), mode
    phrase = json.loads(edgembed("search", '"lukewarm running water"', "--index", index,
                                 "--mode", "keyword", "--keyword-syntax", "--json").stdout)
    assert [h["file"].endswith("first-aid-burns.md") for h in phrase] == [True]
    bad = edgembed("search", "water AND (", "--index", index, "--keyword-syntax")
    assert_one_line_error(bad, "invalid keyword query")
    plain = edgembed("search", "water AND (", "--index", index)
    assert plain.returncode == 0 and plain.stdout
    only_md = json.loads(edgembed("search", "water", "--index", index, "--type", "md",
                                  "--folder", str(folder / "notes"), "--json").stdout)
    assert only_md and all(h["file"].endswith("first-aid-burns.md") for h in only_md)
