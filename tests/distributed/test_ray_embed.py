"""`edgembed embed --ray` on a local Ray cluster started here (`ray.init(num_cpus=2)`):
vectors equal to `Encoder.encode`, bad rows reported and skipped, resume after a killed
run, threads per actor following Ray's CPUs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import assert_one_line_error, cosines, cpu_note, edgembed
from edgembed import codes as C
from edgembed.distributed import embed_to_parquet, parquet_files, read_batches
from edgembed.distributed.embed import bad_rows
from edgembed.errors import EdgembedError

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

N_GOOD = 240
BAD = [{"id": "int", "text": 42}, {"id": "empty", "text": ""},
       {"id": "huge", "text": "word " * 30_000}, "{not json"]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, sentences):
    """JSONL of texts of many lengths (so batches mix lengths) with bad rows among them."""
    path = tmp_path_factory.mktemp("corpus") / "corpus.jsonl"
    lines = []
    for i in range(N_GOOD):
        text = " ".join(sentences[(i + j) % len(sentences)] for j in range(1 + i % 9))
        lines.append(json.dumps({"id": f"doc-{i}", "text": text, "source": "test"}))
        if i % 60 == 30:
            bad = BAD[(i // 60) % len(BAD)]
            lines.append(bad if isinstance(bad, str) else json.dumps(bad))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(out):
    ids, texts, f32, int8, ubinary = [], [], [], [], []
    for _, batch in read_batches(parquet_files(out)):
        ids += batch.ids
        texts += batch.texts
        f32.append(batch.float32)
        int8.append(batch.int8)
        ubinary.append(batch.ubinary)
    return ids, texts, np.concatenate(f32), np.concatenate(int8), np.concatenate(ubinary)


def check_vectors(out, encoder):
    ids, texts, f32, int8, ubinary = load(out)
    assert ids == [f"doc-{i}" for i in range(N_GOOD)]
    expected = encoder.encode(texts)
    # per-token int8 packages give a text the same vector in any batch; what may differ is
    # fp32 rounding in kernels whose blocking depends on the batch shape
    assert cosines(f32, expected).min() > 0.99999, cpu_note()
    assert np.abs(f32 - expected).max() < 1e-4, cpu_note()
    assert np.array_equal(int8, C.quantize_int8(f32, encoder.int8_ranges))
    assert np.array_equal(ubinary, C.pack_signs(f32))


def test_vectors_equal_encode_and_bad_rows_are_skipped(cluster, corpus, default_encoder,
                                                      tmp_path):
    out = tmp_path / "out"
    report = embed_to_parquet([corpus], out, part_bytes=6000, show_progress=False)
    check_vectors(out, default_encoder)
    assert report.rows == N_GOOD and report.bad_rows == 4 and report.parts_done_before == 0
    assert report.parts > 4 and len(report.actors) == 2  # 2 CPUs, 1 CPU per actor
    assert all(actor.threads == 1 and actor.rows_per_s > 0 for actor in report.actors)
    assert sum(actor.rows for actor in report.actors) == N_GOOD
    reasons = {row.get("id"): row["reason"] for row in bad_rows(out)}
    assert set(reasons) == {"int", "empty", "huge", None}
    assert "huge text" in reasons["huge"] and "not JSON" in reasons[None]
    assert json.loads((out / "report.json").read_text())["rows"] == N_GOOD

    # a rerun finds every part written and does no work; another job is refused
    again = embed_to_parquet([corpus], out, part_bytes=6000, show_progress=False)
    assert again.parts_done_before == again.parts and again.rows == N_GOOD
    assert again.bad_rows == 4 and again.actors == []
    with pytest.raises(EdgembedError, match="another job"):
        embed_to_parquet([corpus], out, part_bytes=9000, show_progress=False)


def test_resume_after_a_killed_run(cluster, corpus, default_encoder, tmp_path):
    """Kill the driver (and so its actors) once some parts are written; the rerun keeps
    those files as they are and writes only the rest."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "edgembed", "embed", str(corpus), "--ray", cluster,
               "-o", str(out), "--part-mb", "0.004"]
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + 300
    while len(list(out.glob("part-*.parquet"))) < 2:
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no part written in 300 s"
        time.sleep(0.05)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    written = {path.name: path.stat().st_mtime_ns for path in out.glob("part-*.parquet")}
    plan = json.loads((out / "job.json").read_text())["parts"]
    assert 2 <= len(written) < len(plan)

    result = edgembed("embed", str(corpus), "--ray", cluster, "-o", str(out),
                      "--part-mb", "0.004", "--cpus-per-actor", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    done_before = re.search(r"\((\d+) done before, skipped\)", result.stderr)
    assert done_before and int(done_before.group(1)) >= len(written), result.stderr[-2000:]
    assert "2 thread(s)" in result.stderr  # one actor with both CPUs and 2 threads
    for name, mtime in written.items():
        assert (out / name).stat().st_mtime_ns == mtime  # not rewritten
    check_vectors(out, default_encoder)
    assert not list(out.glob(".*parquet*"))  # no temporary file left behind


def test_cli_errors_are_one_line(tmp_path, corpus):
    assert_one_line_error(edgembed("embed", str(corpus), "--ray"), "-o OUT/")
    assert_one_line_error(edgembed("embed", "--ray", str(corpus), "-o", str(tmp_path / "o")),
                          "put INPUT first")
    assert_one_line_error(edgembed("embed", str(corpus), "--ray", "-o", str(tmp_path / "o"),
                                   "--columns", "float64"), "vector columns")


def test_embed_dataset_adds_columns_to_a_dataset(cluster, default_encoder, sentences):
    from edgembed.distributed.dataset import embed_dataset

    rows = [{"text": text, "n": i} for i, text in enumerate(sentences[:40])]
    rows[3]["text"] = ""
    rows[7]["text"] = None
    dataset = ray.data.from_items(rows, override_num_blocks=4)
    out = embed_dataset(dataset, rows_per_call=16).take_all()
    assert [row["n"] for row in sorted(out, key=lambda r: r["n"])] == list(range(40))
    by_n = {row["n"]: row for row in out}
    assert by_n[3]["error"] == "empty text" and by_n[3]["float32"] is None
    assert "expected str" in by_n[7]["error"] and by_n[7]["int8"] is None
    good = [n for n in range(40) if n not in (3, 7)]
    vectors = np.array([by_n[n]["float32"] for n in good], np.float32)
    expected = default_encoder.encode([sentences[n] for n in good])
    assert cosines(vectors, expected).min() > 0.99999, cpu_note()  # as in check_vectors
    assert all(by_n[n]["error"] is None for n in good)
    assert np.array_equal(np.array([np.frombuffer(by_n[n]["ubinary"], np.uint8) for n in good]),
                          C.pack_signs(vectors))
    with pytest.raises(EdgembedError, match="no column 'body'"):
        embed_dataset(dataset, text_column="body")
