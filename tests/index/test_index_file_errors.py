"""Damaged, missing or mismatched index files and failing writes: the CLI prints one line
`edgembed: error: …` and exits with status 2 (never a traceback, never a crash), and a
failed save leaves the saved index intact."""

from __future__ import annotations

import errno
import json
import random
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from usearch.index import Index as UsearchIndex

from conftest import assert_one_line_error, edgembed, flip_bytes, set_manifest, truncate
from edgembed import Index, default_package_path
from edgembed.errors import IndexFileError, IndexWriteError
from edgembed.index import index as index_module

# ---------------------------------------------------------------- indexes

@pytest.fixture(scope="module")
def saved_index(tmp_path_factory, default_encoder, sentences) -> Path:
    path = tmp_path_factory.mktemp("indexes") / "index"
    with Index.create(path, default_encoder) as index:
        index.add(sentences[:60], ids=[f"s{i}" for i in range(60)])
    return path


@pytest.fixture
def index_copy(saved_index, tmp_path) -> Path:
    target = tmp_path / "index"
    shutil.copytree(saved_index, target)
    return target


def generation(path: Path) -> Path:
    (folder,) = path.glob("gen-*")
    return folder


def set_index_meta(path: Path, **changes) -> None:
    meta = json.loads((path / "index.json").read_text())
    (path / "index.json").write_text(json.dumps({**meta, **changes}))


def overwrite_page(path: Path, page: int = 3) -> None:
    data = bytearray(path.read_bytes())
    data[page * 4096:(page + 1) * 4096] = random.Random(page).randbytes(4096)
    path.write_bytes(bytes(data))


INDEX_FAULTS: dict[str, tuple[Callable[[Path], None], str]] = {
    "unknown format_version": (lambda p: set_index_meta(p, format_version=99),
                               "format_version 99"),
    "index.json not JSON": (lambda p: (p / "index.json").write_text("{oops"), "index.json"),
    "index.json without dim": (lambda p: set_index_meta(p, dim=None), "index.json"),
    "sqlite header": (lambda p: overwrite_page(p / "docs.sqlite", page=0), "docs.sqlite"),
    "sqlite page": (lambda p: overwrite_page(p / "docs.sqlite"), "docs.sqlite"),
    "sqlite truncated": (lambda p: truncate(p / "docs.sqlite"), "docs.sqlite"),
    "sqlite missing": (lambda p: (p / "docs.sqlite").unlink(), "docs.sqlite"),
    "usearch bytes flipped": (lambda p: flip_bytes(generation(p) / "codes.usearch", 0.01),
                              "codes.usearch"),
    "usearch truncated": (lambda p: truncate(generation(p) / "codes.usearch"),
                          "codes.usearch"),
    "npy truncated": (lambda p: truncate(generation(p) / "int8.npy"), "int8.npy"),
    "npy bytes flipped": (lambda p: flip_bytes(generation(p) / "keys.npy", 0.5, 5), "keys.npy"),
    "generation folder missing": (lambda p: shutil.rmtree(generation(p)), "gen-1"),
}


@pytest.mark.parametrize("fault", INDEX_FAULTS)
def test_damaged_index(index_copy, fault):
    damage, message = INDEX_FAULTS[fault]
    damage(index_copy)
    assert_one_line_error(edgembed("search", "anything", "--index", str(index_copy)), message)


def test_index_of_another_model(index_copy, tmp_path):
    other = tmp_path / "other-model"
    shutil.copytree(default_package_path(), other)
    set_manifest(other, name="another-model")
    assert_one_line_error(edgembed("search", "anything", "--index", str(index_copy),
                                   "--model", str(other)), "built with model")


def test_damage_is_found_without_checksums_too(index_copy, default_encoder):
    """verify=False skips the sha256 pass, not the size and shape checks."""
    truncate(generation(index_copy) / "codes.usearch")
    with pytest.raises(IndexFileError, match="truncated"):
        Index.open(index_copy, encoder=default_encoder, verify=False)


# ---------------------------------------------------------------- failing saves

def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target", ["numpy", "usearch", "rename", "sqlite"])
def test_failed_save_leaves_the_saved_index(index_copy, default_encoder, monkeypatch, target):
    before = Index.open(index_copy, encoder=default_encoder, view=True)
    index = Index.open(index_copy, encoder=default_encoder)
    index.add(["a late addition"], ids=["late"])
    index.remove(["s0"])
    with monkeypatch.context() as patch:
        if target == "numpy":
            patch.setattr(np, "save", enospc)
        elif target == "usearch":
            patch.setattr(UsearchIndex, "save", enospc)
        elif target == "rename":
            patch.setattr(index_module.os, "replace", enospc)
        else:  # SQLite refuses the commit, after the new generation folder is in place
            def refuse():
                raise IndexWriteError("cannot write document store: database or disk is full")

            patch.setattr(index.store, "commit", refuse)
        with pytest.raises(IndexWriteError):
            index.save()
    assert not list(index_copy.glob(".gen-*"))
    after = Index.open(index_copy, encoder=default_encoder, view=True)
    assert len(after) == len(before) == 60
    assert after.search("a late addition", k=1)[0].id != "late"
    assert np.array_equal(after._int8, before._int8)
    index.save()  # the changes were kept in memory: the same save works now
    saved = Index.open(index_copy, encoder=default_encoder)
    assert len(saved) == 60 and saved.search("a late addition", k=1)[0].id == "late"


def test_disk_full_in_cli_save(index_copy, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("tides rise and fall with the moon", encoding="utf-8")
    script = ("import errno, sys, numpy\n"
              "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device')\n"
              "numpy.save = full\n"
              "from edgembed.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    result = subprocess.run([sys.executable, "-c", script, "index", str(notes), "--index",
                             str(index_copy)], capture_output=True, text=True, timeout=300)
    assert_one_line_error(result, "No space left on device", "saved index is unchanged")
    hits = json.loads(edgembed("search", "tides and the moon", "--index", str(index_copy),
                               "--json").stdout)
    assert all(not hit["id"].startswith(str(notes)) for hit in hits) and len(hits) == 10


@pytest.mark.parametrize("limit", [30_000, 150_000])
def test_file_size_limit_during_cli_index(index_copy, tmp_path, limit):
    """A real write failure (RLIMIT_FSIZE: writes beyond `limit` bytes fail with EFBIG),
    wherever it first strikes: SQLite's shared memory file (30 kB), the vector files."""
    data = tmp_path / "more"
    data.mkdir()
    with open(data / "records.jsonl", "w", encoding="utf-8") as handle:
        for i in range(500):
            handle.write(json.dumps({"text": f"record {i} on subject {i % 17}"}) + "\n")

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = edgembed("index", str(data), "--index", str(index_copy),
                      preexec_fn=limit_file_size)
    assert_one_line_error(result)
    reopened = Index.open(index_copy)
    assert len(reopened) == 60 and not reopened.files()


def drop_keyword_table(index_dir: Path) -> None:
    """Make the index's docs.sqlite as format versions 1 and 2 wrote it: no keyword table."""
    import sqlite3

    with sqlite3.connect(index_dir / "docs.sqlite") as db:
        for trigger in ("insert", "delete", "update"):
            db.execute(f"DROP TRIGGER docs_fts_{trigger}")
        db.execute("DROP TABLE docs_fts")


def test_format_1_index_is_read_and_upgraded_at_its_first_save(index_copy, default_encoder):
    """Format 1 kept the generation in index.json and had no commit record in SQLite."""
    import sqlite3

    meta = json.loads((index_copy / "index.json").read_text())
    meta.update(format_version=1, generation=1, next_key=60, count=60)
    del meta["keyword_tokenizer"]
    (index_copy / "index.json").write_text(json.dumps(meta))
    drop_keyword_table(index_copy)
    with sqlite3.connect(index_copy / "docs.sqlite") as db:
        db.execute("DROP TABLE state")
    view = Index.open(index_copy, encoder=default_encoder, view=True)
    assert len(view) == 60 and view.search("anything", k=1, mode="dense")[0].id.startswith("s")
    with Index.open(index_copy, encoder=default_encoder) as index:
        index.add(["one more"], ids=["new"])
    meta = json.loads((index_copy / "index.json").read_text())
    assert meta["format_version"] == 3 and "generation" not in meta
    assert meta["keyword_tokenizer"] == "porter unicode61 remove_diacritics 2"
    reopened = Index.open(index_copy, encoder=default_encoder)
    assert len(reopened) == 61 and reopened.search("one more", k=1)[0].id == "new"
    assert reopened.search("one more", k=1, mode="keyword")[0].id == "new"


def test_format_2_index_gets_its_keyword_table_when_opened_for_writing(index_copy,
                                                                       default_encoder):
    """Format 2 had no keyword table: a view searches it densely and says how to add one;
    opening it for writing builds the table from the stored texts."""
    meta = json.loads((index_copy / "index.json").read_text())
    meta["format_version"] = 2
    del meta["keyword_tokenizer"]
    (index_copy / "index.json").write_text(json.dumps(meta))
    drop_keyword_table(index_copy)
    view = Index.open(index_copy, encoder=default_encoder, view=True)
    assert view.search("anything", k=1, mode="dense")[0].id.startswith("s")
    with pytest.raises(IndexFileError, match="no keyword table yet.*edgembed index"):
        view.search("anything", k=1)
    text = view.search("anything", k=1, mode="dense")[0].text
    view.close()
    Index.open(index_copy, encoder=default_encoder).close()
    assert json.loads((index_copy / "index.json").read_text())["format_version"] == 3
    reopened = Index.open(index_copy, encoder=default_encoder, view=True)
    hit = reopened.search(text, k=1, mode="keyword")[0]
    assert hit.text == text and len(reopened) == 60


def test_view_of_an_index_in_a_read_only_folder(index_copy, default_encoder, monkeypatch):
    """Where SQLite cannot create its WAL's -shm file, a view opens the store immutable."""
    from edgembed.index import store

    monkeypatch.setattr(store, "_writable_dir", lambda folder: False)
    assert "immutable=1" in store._readonly_uri(index_copy / "docs.sqlite")
    view = Index.open(index_copy, encoder=default_encoder, view=True)
    assert len(view) == 60 and view.search("anything", k=1)[0].id.startswith("s")
    assert not (index_copy / "docs.sqlite-shm").exists()
