from __future__ import annotations

import json

import numpy as np

from conftest import edgembed


def test_embed_stdin_to_jsonl():
    result = edgembed("embed", stdin="first line\n\nthird line\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert all(len(row["embedding"]) == 384 for row in rows)


def test_embed_file_to_npy_matches_api(tmp_path, default_encoder):
    source = tmp_path / "texts.txt"
    source.write_text("alpha beta\ngamma delta\n", encoding="utf-8")
    output = tmp_path / "out.npy"
    result = edgembed("embed", str(source), "-o", str(output))
    assert result.returncode == 0, result.stderr
    vectors = np.load(output)
    assert vectors.shape == (2, 384)
    assert np.allclose(vectors, default_encoder.encode(["alpha beta", "gamma delta"]), atol=1e-4)


def test_info_json_and_text():
    result = edgembed("info", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["checksums"] == "ok" and info["manifest"]["dim"] == 384
    assert info["sizes"]["model.onnx"] > 1_000_000
    text = edgembed("info")
    assert text.returncode == 0 and "checksums" in text.stdout


def test_errors_are_one_line_with_status_2(tmp_path):
    missing = edgembed("embed", str(tmp_path / "nope.txt"))
    assert missing.returncode == 2
    assert missing.stderr.startswith("edgembed: error:") and "Traceback" not in missing.stderr
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert edgembed("embed", str(binary)).returncode == 2
    bad_package = edgembed("info", str(tmp_path))
    assert bad_package.returncode == 2 and "manifest.json" in bad_package.stderr
    assert "Traceback" not in bad_package.stderr
