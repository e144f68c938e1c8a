"""`edgembed export ORG/NAME[@REVISION]`: Hub ids downloaded with huggingface_hub from a local
server in the Hub's URL layout (tests/hub_server.py), into a temporary HF_HOME. No test
reaches the internet: HF_ENDPOINT points at 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
from hub_server import FakeHub, build_tiny_model, repo_files, serving

from conftest import assert_one_line_error, edgembed
from edgembed import Encoder

pytestmark = pytest.mark.slow  # builds a model with torch and exports it

REPO = "tiny-org/tiny-bert"
PROMPTS = {"query": "query: ", "passage": "passage: "}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    folder = build_tiny_model(tmp_path_factory.mktemp("model") / "tiny-bert", PROMPTS)
    files = repo_files(folder)
    files["onnx/model.onnx"] = b"an ONNX copy the exporter must not download"
    fake = FakeHub()
    commit = fake.add(REPO, files)
    with serving(fake) as url:
        yield {"hub": fake, "url": url, "commit": commit, "files": files,
               "home": tmp_path_factory.mktemp("hf-home")}


def export(hub: dict, *args: str, offline: bool = False, endpoint: str | None = None,
           home: Path | None = None):
    env = {**os.environ, "HF_ENDPOINT": endpoint or hub["url"], "HF_HOME": str(home or hub["home"]),
           "HF_HUB_OFFLINE": "1" if offline else "0", "NO_PROXY": "127.0.0.1,localhost",
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    return edgembed("export", *args, env=env)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_hub_id_is_downloaded_and_pinned_in_the_manifest(hub, tmp_path):
    out = tmp_path / "pkg"
    result = export(hub, REPO, "-o", str(out), "--quantize", "none", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    source = manifest["source"]
    assert source["hub_id"] == REPO and source["model"] == REPO
    assert source["revision"] == hub["commit"]
    assert source["weights_sha256"] == sha256(hub["files"]["model.safetensors"])
    assert manifest["name"] == "tiny-bert"
    assert manifest["prompts"] == PROMPTS and manifest["prefixes"]["query"] == "query: "
    assert manifest["quality"]["mean_cosine"] > 0.9999  # fp32 graph against torch
    fetched = [line.split(" ", 1)[1] for line in hub["hub"].requests if line.startswith("GET")]
    assert f"/{REPO}/resolve/{hub['commit']}/model.safetensors" in fetched
    assert not any("onnx/" in path for path in fetched)
    encoder = Encoder.load(out)
    assert np.allclose(encoder.encode(["cat"], prompt_name="query"),
                       encoder.encode(["query: cat"], prompt=""), atol=1e-6)


def test_offline_export_uses_the_cached_snapshot(hub, tmp_path):
    first = export(hub, REPO, "-o", str(tmp_path / "online"), "--quantize", "none",
                   "--no-validate")
    assert first.returncode == 0, first.stderr[-3000:]
    before = len(hub["hub"].requests)
    out = tmp_path / "offline"
    result = export(hub, f"{REPO}@main", "-o", str(out), "--quantize", "none",
                    "--no-validate", offline=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(hub["hub"].requests) == before  # nothing asked of the server
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert source["revision"] == hub["commit"]


def test_a_pinned_revision_is_what_is_exported(hub, tmp_path):
    files = {**hub["files"], "model.safetensors": hub["files"]["model.safetensors"] + b" "}
    fake: FakeHub = hub["hub"]
    newer = fake.add(REPO, files)  # main moves on; the first commit stays reachable
    try:
        result = export(hub, f"{REPO}@{hub['commit']}", "-o", str(tmp_path / "pinned"),
                        "--quantize", "none", "--no-validate")
        assert result.returncode == 0, result.stderr[-3000:]
        source = json.loads((tmp_path / "pinned" / "manifest.json").read_text())["source"]
        assert source["revision"] == hub["commit"] != newer
        assert source["weights_sha256"] == sha256(hub["files"]["model.safetensors"])
    finally:
        fake.branches[REPO]["main"] = hub["commit"]


def test_a_repository_without_safetensors_gives_its_pytorch_weights(hub, tmp_path):
    folder = build_tiny_model(tmp_path / "tiny-bin", safetensors=False)
    files = repo_files(folder)
    assert "pytorch_model.bin" in files and "model.safetensors" not in files
    commit = hub["hub"].add("tiny-org/tiny-bin", files)
    out = tmp_path / "pkg"
    result = export(hub, "tiny-org/tiny-bin", "-o", str(out), "--quantize", "none",
                    "--no-validate")
    assert result.returncode == 0, result.stderr[-3000:]
    source = json.loads((out / "manifest.json").read_text())["source"]
    assert source["weights_file"] == "pytorch_model.bin" and source["revision"] == commit
    assert source["weights_sha256"] == sha256(files["pytorch_model.bin"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_copy_and_no_hub_is_one_line(hub, tmp_path):
    offline = export(hub, REPO, "-o", str(tmp_path / "a"), offline=True, home=tmp_path / "h1")
    assert_one_line_error(offline, f"cannot get {REPO}", "HF_HUB_OFFLINE=1 is set",
                          "not in the Hugging Face cache")
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = export(hub, REPO, "-o", str(tmp_path / "b"), endpoint=closed,
                         home=tmp_path / "h2")
    assert_one_line_error(unreachable, "cannot be reached", "not in the Hugging Face cache")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unknown_models_and_revisions_are_one_line(hub, tmp_path):
    assert_one_line_error(export(hub, "tiny-org/no-such-model", "-o", str(tmp_path / "a")),
                          "not a local folder, and the Hub has no model")
    assert_one_line_error(export(hub, f"{REPO}@no-such-branch", "-o", str(tmp_path / "b")),
                          f"the Hub model {REPO} has no revision 'no-such-branch'")
    assert_one_line_error(export(hub, "not/a/hub/id", "-o", str(tmp_path / "c")),
                          "source model folder not found")
