"""Options of `edgembed embed`, `index` and `eval` that no other test runs: `embed --kind
query`, `-o` with JSON lines, `index --mode hnsw`, `eval --split/--rescore/--model`, and
the progress bar, which shows on a terminal (a pseudo-terminal here) and nowhere else."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest
from beir_sample import copies_as_queries, write_beir

from conftest import assert_one_line_error, cosines, edgembed, set_manifest
from edgembed import Index
from edgembed.encoder import PROGRESS_MIN_TEXTS

TEXTS = ["where did the cat sleep", "the cat slept on the warm laptop keyboard"]


@pytest.fixture(scope="module")
def renamed_package(tmp_path_factory, default_encoder) -> Path:
    """The bundled package under another name, with a query prefix."""
    package = tmp_path_factory.mktemp("cli-options") / "renamed-model"
    shutil.copytree(default_encoder.path, package)
    set_manifest(package, name="renamed-model", prefixes={"query": "query: ", "document": ""})
    return package


def jsonl_vectors(text: str) -> np.ndarray:
    rows = [json.loads(line) for line in text.splitlines()]
    assert [row["index"] for row in rows] == list(range(len(rows)))
    return np.asarray([row["embedding"] for row in rows], dtype=np.float32)


# ---------------------------------------------------------------- embed

def test_embed_kind_query_uses_the_query_prefix(renamed_package):
    from edgembed import Encoder

    encoder = Encoder.load(renamed_package)
    stdin = "\n".join(TEXTS) + "\n"
    queries = edgembed("embed", "--model", str(renamed_package), "--kind", "query", stdin=stdin)
    documents = edgembed("embed", "--model", str(renamed_package), stdin=stdin)
    assert queries.returncode == documents.returncode == 0, queries.stderr + documents.stderr
    as_queries, as_documents = jsonl_vectors(queries.stdout), jsonl_vectors(documents.stdout)
    assert cosines(as_queries, encoder.encode(TEXTS, kind="query")).min() > 0.9999
    assert cosines(as_documents, encoder.encode(TEXTS, kind="document")).min() > 0.9999
    assert cosines(as_queries, as_documents).max() < 0.99  # the prefix changed every vector


def test_embed_writes_json_lines_to_a_file(tmp_path, default_encoder):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    expected = default_encoder.encode(TEXTS)
    for name, flags in (("vectors.jsonl", []), ("forced.npy", ["--json"])):
        result = edgembed("embed", str(source), "-o", str(tmp_path / name), *flags)
        assert result.returncode == 0 and result.stdout == "", result.stderr
        written = (tmp_path / name).read_text(encoding="utf-8")
        assert cosines(jsonl_vectors(written), expected).min() > 0.9999, name


# ---------------------------------------------------------------- index

def test_index_mode_hnsw_is_kept_and_searched(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    notes = {"bread.txt": "Feed a sourdough starter flour and water every day.",
             "wifi.txt": "Restart the router when the wifi keeps dropping.",
             "burns.txt": "Cool a burn under running water for twenty minutes."}
    for name, text in notes.items():
        (folder / name).write_text(text, encoding="utf-8")
    index = tmp_path / "index"
    result = edgembed("index", str(folder), "--index", str(index), "--mode", "hnsw")
    assert result.returncode == 0, result.stderr
    with Index.open(index, view=True) as opened:
        assert opened.mode == "hnsw" and len(opened) == 3
    (folder / "cats.txt").write_text("The cat sleeps on the warm keyboard.", encoding="utf-8")
    again = edgembed("index", str(folder), "--index", str(index), "--mode", "exact")
    assert again.returncode == 0, again.stderr
    with Index.open(index, view=True) as opened:  # --mode applies when the index is created
        assert opened.mode == "hnsw" and len(opened) == 4
    found = edgembed("search", "my internet connection drops", "--index", str(index), "-k", "1",
                     "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["file"].endswith("wifi.txt")


# ---------------------------------------------------------------- eval

def test_eval_split_rescore_and_model(tmp_path, sentences, renamed_package):
    documents = sentences[:60]
    # dev: copies of documents judged relevant to the next document, so exact search ranks
    # a judged document below the copy and nDCG@10 falls below the test split's 1.0
    dev = {documents[i]: i + 1 for i in (3, 10, 17, 24, 31)}
    data = write_beir(tmp_path / "tiny", documents,
                      {"test": copies_as_queries(documents), "dev": dev})
    result = edgembed("eval", "--data", str(data), "--split", "dev", "--rescore", "3",
                      "--model", str(renamed_package), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["split"], report["n_queries"]) == ("dev", len(dev))
    schemes = {row["scheme"]: row for row in report["schemes"]}
    assert schemes["float32 exact"]["ndcg@10"] < 0.9
    assert {"binary + int8 rescore=3", "binary + int8 rescore=3 (HNSW)"} <= set(schemes)
    assert "binary + int8 rescore=4" not in schemes
    assert report["modes"]["dense"]["note"] == "binary first stage + int8 rescore=3"
    assert report["model"] == "renamed-model"
    assert report["package_id"].startswith("renamed-model@")


# ---------------------------------------------------------------- progress bar

def on_terminal(*args: str, timeout: float = 300) -> tuple[int, str]:
    """`edgembed ARGS` with stderr on a pseudo-terminal: its exit status and what the
    terminal showed."""
    leader, follower = pty.openpty()
    # a new pseudo-terminal is 0 columns wide, where tqdm draws nothing: size it as a window
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "edgembed", *args],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=follower)
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        return process.wait(max(1.0, deadline - time.monotonic())), shown.decode("utf-8",
                                                                                  "replace")
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()


@pytest.fixture(scope="module")
def many_lines(tmp_path_factory, sentences) -> Path:
    """Enough texts for a progress bar, in a text file and as .jsonl records."""
    root = tmp_path_factory.mktemp("progress")
    texts = [f"{sentences[i % len(sentences)]} ({i})" for i in range(PROGRESS_MIN_TEXTS + 88)]
    (root / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    with open(root / "records.jsonl", "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"text": text}) + "\n")
    return root


def test_embed_shows_a_progress_bar_on_a_terminal_only(many_lines, tmp_path):
    total = PROGRESS_MIN_TEXTS + 88
    status, shown = on_terminal("embed", str(many_lines / "texts.txt"),
                                "-o", str(tmp_path / "terminal.npy"))
    assert status == 0, shown
    assert f"{total}/{total}" in shown and "text/s" in shown, shown
    piped = edgembed("embed", str(many_lines / "texts.txt"), "-o", str(tmp_path / "piped.npy"))
    assert piped.returncode == 0
    assert piped.stderr == f"wrote {total} × 384 float32 to {tmp_path / 'piped.npy'}\n"
    assert np.array_equal(np.load(tmp_path / "terminal.npy"), np.load(tmp_path / "piped.npy"))


def test_index_shows_a_progress_bar_on_a_terminal(many_lines, tmp_path):
    total = PROGRESS_MIN_TEXTS + 88
    status, shown = on_terminal("index", str(many_lines / "records.jsonl"),
                                "--index", str(tmp_path / "index"))
    assert status == 0, shown
    assert f"{total}/{total}" in shown, shown
    assert f"{total} passages in the index" in shown


# ---------------------------------------------------------------- --passes

def test_passes_option_reaches_the_encoder_of_a_model_and_of_an_index(tmp_path,
                                                                      default_encoder):
    """--passes is Encoder.load's parallel_passes, for --model and for an index's own
    model alike; without any load option an index still loads its model itself."""
    from edgembed.cli import build_parser
    from edgembed.cli.backend import index_encoder, load_encoder

    parser = build_parser()
    model = str(default_encoder.path)
    for choice, expected in (("serial", False), ("parallel", True), ("auto", True)):
        args = parser.parse_args(["embed", "--model", model, "--threads", "2",
                                  "--passes", choice])
        assert load_encoder(args, args.model).parallel_passes is expected, choice
    with Index.create(tmp_path / "index", default_encoder) as built:
        built.add(TEXTS)
    args = parser.parse_args(["search", "cat", "--index", str(tmp_path / "index"),
                              "--passes", "serial"])
    encoder = index_encoder(args)
    assert encoder is not None and encoder.parallel_passes is False
    assert encoder.path == default_encoder.path
    args = parser.parse_args(["search", "cat", "--index", str(tmp_path / "index")])
    assert index_encoder(args) is None


def test_embed_passes_serial_and_parallel_give_the_same_vectors(default_encoder):
    lines = [f"note {i}: {' '.join(['the cat slept on the warm keyboard'] * (1 + i % 5))}"
             for i in range(60)]  # several passes of unequal lengths
    stdin = "\n".join(lines) + "\n"
    runs = {choice: edgembed("embed", "--threads", "2", "--passes", choice, stdin=stdin)
            for choice in ("serial", "parallel")}
    for choice, result in runs.items():
        assert result.returncode == 0, (choice, result.stderr)
    serial, parallel = (jsonl_vectors(runs[choice].stdout) for choice in ("serial", "parallel"))
    assert serial.shape == parallel.shape == (60, default_encoder.dim)
    assert cosines(serial, parallel).min() > 0.9999
    assert cosines(parallel, default_encoder.encode(lines)).min() > 0.9999


def test_passes_parallel_where_impossible_is_one_line_error():
    result = edgembed("embed", "--threads", "1", "--passes", "parallel", stdin="a cat\n")
    assert_one_line_error(result, "parallel_passes=True", "threads=1")
    assert result.stdout == ""
