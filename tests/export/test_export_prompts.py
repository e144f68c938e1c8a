"""The exporter copies config_sentence_transformers.json's prompts and default prompt into
the manifest; the quality card compares the texts without any prompt on both sides."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hub_server import build_tiny_model

from edgembed import Encoder
from edgembed.errors import ExportError
from edgembed.export import ExportOptions, export_model

pytestmark = pytest.mark.slow  # builds a model with torch and exports it

PROMPTS = {"query": "query: ", "passage": "passage: ", "cluster": "Identify the topic: "}
TEXTS = ["the cat sat on the mat", "rain falls from clouds", "how do you make bread"]


def test_prompts_and_the_default_reach_the_package(tmp_path):
    folder = build_tiny_model(tmp_path / "tiny", PROMPTS, default_prompt_name="cluster")
    out = tmp_path / "pkg"
    manifest = export_model(folder, out, ExportOptions(quantize="none"))
    assert dict(manifest.prompts) == PROMPTS and manifest.default_prompt_name == "cluster"
    assert dict(manifest.prefixes) == {"query": "query: ", "document": "passage: "}
    # the card: package and torch on the same texts, neither adding the default prompt
    assert manifest.quality["mean_cosine"] > 0.9999
    encoder = Encoder.load(out)
    assert np.allclose(encoder.encode(TEXTS), encoder.encode(TEXTS, prompt_name="cluster"),
                       atol=1e-6)
    assert not np.allclose(encoder.encode(TEXTS), encoder.encode(TEXTS, prompt=""), atol=1e-3)


def test_a_default_prompt_that_is_not_a_prompt_is_refused(tmp_path):
    folder = build_tiny_model(tmp_path / "tiny", PROMPTS)
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({"prompts": PROMPTS, "default_prompt_name": "qeury"}))
    with pytest.raises(ExportError, match="default_prompt_name 'qeury' is not one of its "
                                          "prompts"):
        export_model(folder, tmp_path / "pkg", ExportOptions(quantize="none"))
    config.write_text(json.dumps({"prompts": {"query": 3}}))
    with pytest.raises(ExportError, match="prompts must be an object of name → text"):
        export_model(folder, tmp_path / "pkg", ExportOptions(quantize="none"))
